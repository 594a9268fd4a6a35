"""ROUGE of predictions against one or more references per row: ROUGE-N, ROUGE-L and ROUGE-Lsum
from Google's rouge_score, plus ROUGE-S and ROUGE-SU, which rouge_score lacks.

Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries",
https://aclanthology.org/W04-1013. For a candidate X of n tokens and a reference Y of m tokens:

- rouge1 ... rouge9 (ROUGE-N, section 2), rougeL (LCS over the whole text, section 3) and
  rougeLsum (summary-level union LCS, section 3.2): exactly `rouge_score.rouge_scorer`. rougeLsum
  treats each line as a sentence, so join summary sentences with "\\n" first; text without
  newlines is one sentence and rougeLsum then equals rougeL.
- rougeS (skip-bigram co-occurrence, section 5): a skip-bigram is any in-order pair of words,
  with any gap. SKIP2(X, Y) counts the skip-bigrams the two share, clipped by multiplicity
  (sum over pairs of min(count in X, count in Y)), and

      R = SKIP2 / C(m, 2)      P = SKIP2 / C(n, 2)      F = 2 P R / (P + R)   (beta = 1)

  `skip_gap=d` keeps only pairs with at most d words between them (ROUGE-S4 is d=4; d=0 leaves
  plain bigrams, so rougeS equals rouge2). This is the paper's d_skip and ROUGE-1.5.5's
  `-2 d` (pair (i, j) kept when j <= i + d + 1); the denominators are then the number of such
  pairs rather than C(., 2).
- rougeSU (section 5): rougeS with unigrams also counted, as if a begin-of-sentence marker were
  prepended, so the denominators become C(m, 2) + m and C(n, 2) + n. Unigrams count whatever
  `skip_gap` is. (ROUGE-1.5.5's `-u` skips the last token's unigram; we follow the paper.)

All types share rouge_score's tokenizer: lowercase, every run of characters outside [a-z0-9]
becomes a space (so accented letters split words and non-Latin scripts vanish), optional Porter
stemmer for words longer than 3 characters. A text with fewer than two tokens has no
skip-bigrams; an empty denominator gives 0, never NaN. With several references a row scores
against the one with the highest F (the first on ties), as `RougeScorer.score_multi` does.
Corpus figures are means over rows.

    from llmkit.eval.rouge import rouge
    rouge(["police kill the gunman"], ["police killed the gunman"])["rougeS"]["f1"]  # 0.5
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rouge_score import rouge_scorer, scoring, tokenizers

from llmkit.errors import EvalInputError
from llmkit.eval._inputs import check_pairs

SKIP_TYPES = ("rougeS", "rougeSU")  # computed here; every other valid type goes to rouge_score
_VALID = "rouge1 ... rouge9, rougeL, rougeLsum, " + ", ".join(SKIP_TYPES)


def _is_valid(rouge_type: str) -> bool:
    # rouge_score accepts rouge<digit> with the digit > 0, rougeL and rougeLsum
    return rouge_type in ("rougeL", "rougeLsum", *SKIP_TYPES) or re.fullmatch(r"rouge[1-9]", rouge_type) is not None


def skip_bigrams(tokens: list[str], skip_gap: int | None = None, unigrams: bool = False) -> Counter:
    """Counts of in-order word pairs (i < j, at most `skip_gap` words between them; None: any),
    plus 1-tuples of every word when `unigrams` (ROUGE-SU)."""
    counts: Counter = Counter()
    n = len(tokens)
    for i in range(n - 1):
        stop = n if skip_gap is None else min(n, i + skip_gap + 2)
        for j in range(i + 1, stop):
            counts[(tokens[i], tokens[j])] += 1
    if unigrams:
        counts.update((t,) for t in tokens)
    return counts


def _score_counts(target: Counter, prediction: Counter) -> scoring.Score:
    hits = sum(min(c, prediction[k]) for k, c in target.items())
    n_target, n_pred = sum(target.values()), sum(prediction.values())
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_target if n_target else 0.0
    return scoring.Score(precision=precision, recall=recall, fmeasure=scoring.fmeasure(precision, recall))


def rouge(predictions: Sequence[str], references: Sequence, *,
          rouge_types: Sequence[str] = ("rouge1", "rouge2", "rougeL", "rougeLsum", "rougeS", "rougeSU"),
          use_stemmer: bool = False, skip_gap: int | None = None, per_row: bool = False) -> dict:
    """ROUGE of `predictions` against `references` (a string or a list of strings per row).

    Returns {type: {"precision", "recall", "f1"}} (means over rows) for each of `rouge_types`, and
    with per_row=True also "per_row": {type: [F1 of each row]}. `skip_gap` applies to rougeS and
    rougeSU only."""
    preds, refs = check_pairs(predictions, references, metric="rouge")
    types = [rouge_types] if isinstance(rouge_types, str) else list(dict.fromkeys(rouge_types))
    if not types:
        raise EvalInputError(f"rouge: no rouge_types requested; valid ones are {_VALID}")
    for t in types:
        if not isinstance(t, str) or not _is_valid(t):
            raise EvalInputError(f"rouge: unknown rouge type {t!r}; valid ones are {_VALID}")
    if skip_gap is not None and (isinstance(skip_gap, bool) or not isinstance(skip_gap, int) or skip_gap < 0):
        raise EvalInputError(f"rouge: skip_gap must be None (any gap) or an int >= 0, got {skip_gap!r}")

    library_types = [t for t in types if t not in SKIP_TYPES]
    scorer = rouge_scorer.RougeScorer(library_types, use_stemmer=use_stemmer) if library_types else None
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer)

    rows: dict[str, list[scoring.Score]] = {t: [] for t in types}
    for pred, targets in zip(preds, refs):
        if scorer is not None:
            # score_multi keeps, per type, the reference with the highest F
            for t, s in scorer.score_multi(targets, pred).items():
                rows[t].append(s)
        skip_types = [t for t in types if t in SKIP_TYPES]
        if skip_types:
            pred_tokens = tokenizer.tokenize(pred)
            target_tokens = [tokenizer.tokenize(x) for x in targets]
        for t in skip_types:
            unigrams = t == "rougeSU"
            pred_counts = skip_bigrams(pred_tokens, skip_gap, unigrams)
            scores = [_score_counts(skip_bigrams(x, skip_gap, unigrams), pred_counts) for x in target_tokens]
            rows[t].append(max(scores, key=lambda s: s.fmeasure))  # max keeps the first on ties

    out: dict = {t: {"precision": sum(s.precision for s in r) / len(r),
                     "recall": sum(s.recall for s in r) / len(r),
                     "f1": sum(s.fmeasure for s in r) / len(r)} for t, r in rows.items()}
    if per_row:
        out["per_row"] = {t: [s.fmeasure for s in r] for t, r in rows.items()}
    return out
