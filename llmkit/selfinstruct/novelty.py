"""The Self-Instruct ROUGE-L novelty filter, exact and fast enough for a pool of 50,000+.

Self-Instruct (https://arxiv.org/abs/2212.10560) keeps a generated instruction only if its ROUGE-L F1
against every instruction already in the pool is <= a threshold (0.7); it is rejected as soon as one
pool item scores above it. The reference computes this with `rouge_score` (`RougeScorer(["rougeL"])`,
no stemming) against every pool item: a pure-Python O(m*n) LCS table per pair, about 58 us a pair, so
about 3 s per candidate at a 50,000 pool and ~22 CPU-hours to grow a 52K pool.

`NoveltyIndex` makes the same decisions (bit for bit: see "Floating point" below) and reports the same
scores, about 1 ms per candidate at a 50,000 pool against 2 s for that loop on the same 2-core box
(~1,900x; an unpruned rapidfuzz pass over the pool takes 25 ms): benchmarks/novelty_index.py, results
in benchmarks/results/novelty_cpu.md.

    index = NoveltyIndex(0.7, texts=seed_instructions)   # seeds are added unconditionally
    kept, score = index.check_add(candidate)             # score: max ROUGE-L F1 when kept

How:

- Tokens are rouge_score's (`rouge_tokens`). Each distinct token gets an id, and each pool item is
  stored as a str with one character per token (the id as a code point), so rapidfuzz's C++
  bit-parallel LCS (`LCSseq`) computes the token LCS with no per-call list conversion (this caps the
  vocabulary at ~1.1M distinct tokens, the number of non-surrogate code points).
- ROUGE-L F1 = 2*LCS/(m+n) for token lengths m (candidate) and n (pool item). Only pool items that
  pass three exact bounds are scored (with the threshold t; L = LCS, O = unigram multiset overlap):

  1. Overlap:  L <= O = sum over tokens of min(count in candidate, count in item)  (every LCS match
     pairs equal tokens, each occurrence used once). O comes from an inverted index token -> (item,
     count). The bound on F is 2*min(O, m, n)/(m+n).
  2. Length:   L <= min(m, n), so F > t needs 2*min(m,n) > t*(m+n): n > t*m/(2-t) and n < m*(2-t)/t.
  3. Prefix:   F > t needs L > t*m/(2-t), proof: 2L > t*(m+n) >= t*(m+L) since n >= L and t >= 0, so
     L*(2-t) > t*m. So O >= L >= k := floor(t*m/(2-t)) + 1. Sort the candidate's m token occurrences
     from rarest (fewest pool items) up and take the first m-k+1: an item sharing none of those
     tokens can match only the other k-1 occurrences, so O <= k-1 < k. Hence every item that can
     score above t holds one of the prefix tokens, and only their postings are read (tokens new to
     the pool are the rarest of all, and cost nothing).

  None of these can drop an item whose score is above t, so a decision never changes. Scoring the
  survivors highest-bound first, a near-duplicate is usually rejected by the first item scored.
- A kept candidate's exact maximum (check_add's score, max_similarity): the threshold search above
  scored every item that can exceed t, so if its best r >= t, r is the max. Otherwise bound 1 over
  all items sharing a token (one pass over the candidate's postings), then score, highest bound
  first, only items whose bound still reaches the running best.

Floating point. rouge_score computes p = L/len(candidate), r = L/len(item), F = 2*p*r/(p+r), which
is not always the float nearest 2L/(m+n): pairs whose exact F is 0.7 score 0.7000000000000001 (L=7,
m=7, n=13: rejected) or 0.7 (L=7, m=n=10: kept). So every score here is computed with rouge_score's
formula in the same operation order (numpy's float64 ops are the same IEEE operations), and the
bounds are evaluated in integers against t_lo = floor(t*1e6 - 1)/1e6 <= t - 1e-6 instead of t: that
formula is within a few ulps (< 1e-15) of the exact ratio, so a float score > t implies an exact
score > t_lo, and pruning on t_lo is safe; the decision itself is always the float `score > t`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

# rouge_score/tokenize.py with stemmer=None: lowercase, runs of non [a-z0-9] -> one space, split on
# whitespace, drop tokens that are not ^[a-z0-9]+$. After the substitution only [a-z0-9 ] remains,
# so str.split() yields exactly the valid non-empty tokens (the empty ones are what the filter drops).
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SCALE = 10**6  # the integer bounds compare against t_lo = _num(t) / _SCALE
_MARGIN = 1e-9  # float-level slack when pruning against a running best score (formula error < 1e-15)


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's default tokens (use_stemmer=False): `RougeScorer(...)._tokenizer.tokenize(text)`."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _code(token_id: int) -> str:
    # One character per token; skip the surrogate block so every code is a plain code point.
    return chr(token_id if token_id < 0xD800 else token_id + 0x800)


def rouge_l(lcs: int, m: int, n: int) -> float:
    """rouge_score's ROUGE-L F1 from the LCS length and the candidate (m) and pool item (n) token
    counts, in its own float operation order (`_score_lcs` + `scoring.fmeasure`)."""
    if lcs == 0:  # also covers an empty side: rouge_score returns 0 there
        return 0.0
    precision, recall = lcs / m, lcs / n
    return 2 * precision * recall / (precision + recall)


def _rouge_l_array(lcs: np.ndarray, m: int, n: np.ndarray) -> np.ndarray:
    """rouge_l over arrays (float64 IEEE ops in the same order, so equal bit for bit)."""
    lcs = lcs.astype(np.float64)
    out = np.zeros(len(lcs))
    hit = lcs > 0
    p, r = lcs[hit] / m, lcs[hit] / n[hit]
    out[hit] = 2 * p * r / (p + r)
    return out


class _Postings:
    """The pool items holding one token, in insertion order (so sorted), with the token's count in
    each; numpy arrays that double when full."""

    __slots__ = ("docs", "counts", "size")

    def __init__(self):
        self.docs = np.empty(8, np.int64)
        self.counts = np.empty(8, np.int64)
        self.size = 0

    def append(self, doc: int, count: int) -> None:
        if self.size == len(self.docs):
            self.docs = np.concatenate([self.docs, np.empty_like(self.docs)])
            self.counts = np.concatenate([self.counts, np.empty_like(self.counts)])
        self.docs[self.size] = doc
        self.counts[self.size] = count
        self.size += 1


class NoveltyIndex:
    """A growing instruction pool that admits a text only when its ROUGE-L F1 against every item is
    <= threshold, deciding exactly as the rouge_score loop does."""

    def __init__(self, threshold: float = 0.7, texts: Iterable[str] = ()):
        threshold = float(threshold)
        if math.isnan(threshold):
            raise ValueError("threshold is NaN")
        self.threshold = threshold
        self.texts: list[str] = []
        self._vocab: dict[str, int] = {}  # token -> id >= 1; id 0 codes tokens the pool lacks
        self._codes: list[str] = []  # per item: one character per token
        self._lens = np.empty(1024, np.int64)  # per item: token count (grown by doubling)
        self._postings: dict[int, _Postings] = {}
        for text in texts:
            self.add(text, force=True)

    def __len__(self) -> int:
        return len(self.texts)

    # ---- public API ------------------------------------------------------------------------------

    def add(self, text: str, *, force: bool = False) -> bool:
        """Add `text` if it is novel (max ROUGE-L F1 <= threshold), or unconditionally with force
        (seeds). Returns whether it was added."""
        if not force and self._decide(self._encode(text))[0]:
            return False
        self._append(text)
        return True

    def check_add(self, text: str) -> tuple[bool, float]:
        """(added, score). Added: score is the exact max ROUGE-L F1 over the pool before adding (0.0
        for an empty pool). Rejected: score is some pool item's score, > threshold."""
        query = self._encode(text)
        reject, best = self._decide(query)
        if reject:
            return False, best
        score = self._max(query, self.threshold, best) if 0.0 <= self.threshold < 1.0 else self._max(query)
        self._append(text)
        return True, score

    def max_similarity(self, text: str) -> float:
        """The exact max ROUGE-L F1 of `text` against the pool (0.0 for an empty pool)."""
        return self._max(self._encode(text))

    def most_similar(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The k pool items with the highest ROUGE-L F1 against `text`, best first (ties in insertion
        order). Scores the whole pool (O(pool) C++ LCS calls)."""
        codes, m, _ = self._encode(text)
        n = len(self.texts)
        if k <= 0 or not n:
            return []
        scores = self._score(codes, m, np.arange(n)) if m else np.zeros(n)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.texts[i], float(scores[i])) for i in top]

    # ---- internals -------------------------------------------------------------------------------

    def _encode(self, text: str) -> tuple[str, int, Counter]:
        """(codes, token count, Counter of token ids): tokens not in the pool get id 0, which no pool
        item contains, so they match nothing, as they should."""
        ids = [self._vocab.get(tok, 0) for tok in rouge_tokens(text)]
        return "".join(map(_code, ids)), len(ids), Counter(ids)

    def _append(self, text: str) -> None:
        doc = len(self.texts)
        ids = [self._vocab.setdefault(tok, len(self._vocab) + 1) for tok in rouge_tokens(text)]
        if doc == len(self._lens):
            self._lens = np.concatenate([self._lens, np.empty_like(self._lens)])
        self._lens[doc] = len(ids)
        for tok, count in Counter(ids).items():
            if tok not in self._postings:
                self._postings[tok] = _Postings()
            self._postings[tok].append(doc, count)
        self._codes.append("".join(map(_code, ids)))
        self.texts.append(text)

    def _score(self, codes: str, m: int, docs: np.ndarray) -> np.ndarray:
        """Exact rouge_score F1 of the candidate (m tokens) against the given pool items."""
        items = [self._codes[i] for i in docs.tolist()]
        lcs = process.cdist([codes], items, scorer=LCSseq.similarity, dtype=np.int64, workers=1)[0]
        return _rouge_l_array(lcs, m, self._lens[docs])

    def _decide(self, query: tuple[str, int, Counter]) -> tuple[bool, float | None]:
        """(reject, best): reject when some pool item scores > threshold, and best is then that score.
        Otherwise best is the max over the items _search scored (None if it scored none)."""
        t = self.threshold
        if not self.texts or t >= 1.0:  # F <= 1 always (and F == 1.0 exactly for equal token lists)
            return False, None
        if t < 0.0:  # every pair scores >= 0 > t
            return True, 0.0
        best = self._search(query, t, stop=t)
        return best is not None and best > t, best

    def _search(self, query: tuple[str, int, Counter], tau: float, stop: float = math.inf) -> float | None:
        """Score every pool item whose score can exceed tau (0 <= tau < 1), highest bound first, and
        return the best score, or as soon as a chunk holds a score > stop; None if no item can.

        Every item left out scores <= t_lo := num/_SCALE <= tau - 1e-6 exactly, so < tau as a float
        (module docstring); `num` has -1 so that rounding in tau*_SCALE (error << 1) cannot matter."""
        codes, m, counts = query
        num = math.floor(tau * _SCALE) - 1
        if num <= 0:  # t_lo < 0: any shared token may be enough; no length or prefix bound
            k, n_hi = 1, None
        else:
            k = num * m // (2 * _SCALE - num) + 1  # bound 3: least L with L*(2-t_lo) > t_lo*m
            n_hi = (m * (2 * _SCALE - num) - 1) // num  # bound 2: largest n with t_lo*n < m*(2-t_lo)
        if k > m:
            return None
        # Bound 3: probe with the m-k+1 rarest occurrences (unknown tokens, id 0, are the rarest).
        known = sorted((tok for tok in counts if tok), key=lambda tok: self._postings[tok].size)
        left, i = m - k + 1 - counts.get(0, 0), 0
        while left > 0 and i < len(known):
            left -= counts[known[i]]
            i += 1
        probe, rest = known[:i], known[i:]
        if not probe:
            return None
        docs, overlap = self._gather(probe, counts)
        lens = self._lens[docs]
        keep = lens >= k if n_hi is None else (lens >= k) & (lens <= n_hi)  # bound 2 (and n >= L >= k)
        docs, overlap, lens = docs[keep], overlap[keep], lens[keep]
        # Bound 1, tightened token by token (rarest first): the tokens not yet counted can add at
        # most their candidate counts, `remaining`, to an item's overlap.
        remaining = sum(counts[tok] for tok in rest)
        for tok in [*rest, None]:
            ub = np.minimum(np.minimum(overlap + remaining, lens), m)
            keep = 2 * ub * _SCALE > num * (m + lens)  # 2*ub/(m+n) > t_lo, in integers
            docs, overlap, lens = docs[keep], overlap[keep], lens[keep]
            if not len(docs):
                return None
            if tok is None:
                break
            post = self._postings[tok]
            pdocs = post.docs[: post.size]
            at = np.searchsorted(pdocs, docs).clip(max=post.size - 1)
            hit = pdocs[at] == docs
            overlap[hit] += np.minimum(post.counts[at[hit]], counts[tok])
            remaining -= counts[tok]
        order = np.argsort(-(2 * ub[keep] / (m + lens)), kind="stable")
        best, start, size = None, 0, 8
        while start < len(order):
            chunk_best = float(self._score(codes, m, docs[order[start : start + size]]).max())
            best = chunk_best if best is None else max(best, chunk_best)
            if best > stop:
                break
            start, size = start + size, size * 8
        return best

    def _gather(self, tokens: list[int], counts: Counter) -> tuple[np.ndarray, np.ndarray]:
        """(items, overlap): the sorted pool items holding any of `tokens`, and their overlap with the
        candidate counted over those tokens. Sorts the postings when they are few, else counts into a
        dense array (O(pool))."""
        posts = [self._postings[tok] for tok in tokens]
        if sum(post.size for post in posts) > len(self.texts) // 8:
            overlap = np.zeros(len(self.texts), np.int64)
            for tok, post in zip(tokens, posts):
                overlap[post.docs[: post.size]] += np.minimum(post.counts[: post.size], counts[tok])
            docs = np.flatnonzero(overlap)
            return docs, overlap[docs]
        if not posts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        docs = np.concatenate([post.docs[: post.size] for post in posts])
        overlap = np.concatenate([np.minimum(post.counts[: post.size], counts[tok]) for tok, post in zip(tokens, posts)])
        if len(posts) == 1:
            return docs, overlap
        order = np.argsort(docs, kind="stable")
        docs, overlap = docs[order], overlap[order]
        first = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
        return docs[first], np.add.reduceat(overlap, first)

    def _max(self, query: tuple[str, int, Counter], tau: float | None = None, best: float | None = None) -> float:
        """Exact max score. (tau, best) may say that _search(query, tau) returned best already.

        If _search(tau) returns r >= tau, r is the max (every item it skipped scores < tau).
        Otherwise score everything that shares a token (_max_dense), starting from r."""
        codes, m, counts = query
        if not self.texts or not m:
            return 0.0
        if tau is None:
            tau = min(max(self.threshold, 0.2), 0.9)
            best = self._search(query, tau)
        if best is not None and best >= tau:
            return best
        return self._max_dense(query, best or 0.0)

    def _max_dense(self, query: tuple[str, int, Counter], best: float = 0.0) -> float:
        """Exact max score, given a score `best` that some item attains: bound 1 over every item
        sharing a token, then score the items in decreasing bound order while the bound can still
        reach the best score found."""
        codes, m, counts = query
        docs, overlap = self._gather([tok for tok in counts if tok], counts)  # the others score 0
        lens = self._lens[docs]
        bound = 2 * np.minimum(np.minimum(overlap, lens), m) / (m + lens)
        keep = bound >= best - _MARGIN  # a float score is within 1e-15 of its exact value <= bound
        docs, bound, size = docs[keep], bound[keep], 16
        while len(docs):
            top = np.argpartition(-bound, size)[:size] if len(docs) > size else np.arange(len(docs))
            best = max(best, float(self._score(codes, m, docs[top]).max()))
            rest = np.ones(len(docs), bool)
            rest[top] = False
            rest &= bound >= best - _MARGIN  # a float score is within 1e-15 of its exact value <= bound
            docs, bound = docs[rest], bound[rest]
            size *= 4
        return best
