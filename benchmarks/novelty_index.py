"""Self-Instruct's ROUGE-L novelty filter at a 50,000-instruction pool: llmkit's NoveltyIndex against
the reference rouge_score loop, with the decisions checked.

    .venv/bin/python benchmarks/novelty_index.py [--pool 50000] [--candidates 200] [--reference 5]

The pool is built at run time from the 175 Self-Instruct seed instructions
(/work/shared/data/self_instruct_seed_tasks.jsonl, or --seeds): each pool item is a random seed
with every word replaced, with probability --rate, by a random word of the seed vocabulary (a small
vocabulary with heavy overlap: close to a worst case for the index's pruning). Candidates are half
near-duplicates (a seed with 5-20% of its words replaced) and half novel (80% replaced), shuffled.

Per candidate, in the order a generation loop would see them (the pool grows by the kept ones):
  A  the reference: rouge_score `RougeScorer(["rougeL"]).score(item, candidate)` against every pool
     item, reject when any F1 > threshold (Self-Instruct scores the whole pool); timed on the first
     --reference candidates only, since each takes seconds, and its decisions are compared.
  C  exhaustive exact scoring with rapidfuzz (LCS of token-id lists against every item, rouge_score's
     F1 formula): no pruning; it checks the index's decision and score on every candidate.
  B  NoveltyIndex.check_add (decision, plus the exact max for a kept one) and, on the final pool,
     NoveltyIndex.max_similarity of --candidates fresh texts drawn the same way (checked against C).
Writes benchmarks/results/novelty_<device>.md (always "cpu": nothing here uses an accelerator).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from rouge_score import rouge_scorer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from sft_throughput import machine  # noqa: E402

from llmkit.selfinstruct.novelty import NoveltyIndex, rouge_l, rouge_tokens  # noqa: E402

SEEDS = Path("/work/shared/data/self_instruct_seed_tasks.jsonl")


def mutate(rng: random.Random, words: list[str], vocab: list[str], rate: float) -> str:
    return " ".join(rng.choice(vocab) if rng.random() < rate else w for w in words)


class Exhaustive:
    """Column C: every pool item scored, no pruning (token ids as int lists, so nothing is shared
    with the index's own encoding)."""

    def __init__(self, texts: list[str]):
        self.vocab: dict[str, int] = {}
        self.items: list[list[int]] = []
        self.lens: list[int] = []
        for text in texts:
            self.add(text)

    def ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(tok, len(self.vocab)) for tok in rouge_tokens(text)]

    def add(self, text: str) -> None:
        self.items.append(self.ids(text))
        self.lens.append(len(self.items[-1]))

    def scores(self, text: str) -> list[float]:
        ids = self.ids(text)
        lcs = process.cdist([ids], self.items, scorer=LCSseq.similarity, dtype=np.int64, workers=1)[0]
        return [rouge_l(int(x), len(ids), n) for x, n in zip(lcs, self.lens)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--reference", type=int, default=5, help="candidates timed with the rouge_score loop")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--rate", type=float, default=0.5, help="word substitution rate of pool items")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=Path, default=SEEDS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/novelty_cpu.md")
    args = ap.parse_args()

    seeds = [json.loads(line)["instruction"] for line in args.seeds.read_text().splitlines() if line.strip()]
    words = [rouge_tokens(s) for s in seeds]
    vocab = sorted({w for ws in words for w in ws})
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    pool = [mutate(rng, rng.choice(words), vocab, args.rate) for _ in range(args.pool)]
    t_texts = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = NoveltyIndex(args.threshold, pool)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    exhaustive = Exhaustive(pool)
    t_exh = time.perf_counter() - t0
    half = args.candidates // 2

    def draw() -> list[str]:
        texts = [mutate(rng, rng.choice(words), vocab, rng.choice([0.05, 0.1, 0.2])) for _ in range(half)]
        texts += [mutate(rng, rng.choice(words), vocab, 0.8) for _ in range(args.candidates - half)]
        rng.shuffle(texts)
        return texts

    candidates, probes = draw(), draw()  # probes: fresh texts for max_similarity on the final pool
    print(f"pool {args.pool:,} built: texts {t_texts:.2f}s, NoveltyIndex {t_index:.2f}s; {len(vocab)} words", flush=True)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    t = args.threshold
    ref_times, c_times, b_times, mismatches, ref_ok = [], [], [], [], 0
    kept_times, rejected_times = [], []
    for i, cand in enumerate(candidates):
        if i < args.reference:
            items = list(index.texts)
            t0 = time.perf_counter()
            ref_scores = [scorer.score(item, cand)["rougeL"].fmeasure for item in items]
            ref_keep = not any(s > t for s in ref_scores)
            ref_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = exhaustive.scores(cand)
        c_times.append(time.perf_counter() - t0)
        c_max, c_keep = max(scores), not any(s > t for s in scores)
        t0 = time.perf_counter()
        added, score = index.check_add(cand)
        b_times.append(time.perf_counter() - t0)
        (kept_times if added else rejected_times).append(b_times[-1])
        if i < args.reference:
            ref_ok += ref_keep == added and (not added or max(ref_scores) == score)
            print(f"  reference {i}: {ref_times[-1]:.2f}s, kept={ref_keep}, index kept={added} in "
                  f"{b_times[-1] * 1e3:.2f} ms", flush=True)
        if added != c_keep or (added and score != c_max) or (not added and score not in scores):
            mismatches.append(i)
        if added:
            exhaustive.add(cand)
    max_times, max_bad = [], 0
    for probe in probes:
        t0 = time.perf_counter()
        score = index.max_similarity(probe)
        max_times.append(time.perf_counter() - t0)
        max_bad += score != max(exhaustive.scores(probe))

    med = statistics.median
    ref, chk, mx, exh = med(ref_times), med(b_times), med(max_times), med(c_times)
    n_kept = len(kept_times)

    def ms(x: float) -> str:
        return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"

    rows = [
        ("A: rouge_score loop over the pool (reference)", args.reference, ref, "1x"),
        ("C: rapidfuzz LCS on token ids, every pool item (no pruning)", len(c_times), exh, f"{ref / exh:,.0f}x"),
        ("B: `NoveltyIndex.check_add`, all", len(b_times), chk, f"**{ref / chk:,.0f}x**"),
        ("B: `check_add`, rejected (decision only)", len(rejected_times), med(rejected_times) if rejected_times else float("nan"),
         f"{ref / med(rejected_times):,.0f}x" if rejected_times else "-"),
        ("B: `check_add`, kept (decision + exact max)", n_kept, med(kept_times) if kept_times else float("nan"),
         f"{ref / med(kept_times):,.0f}x" if kept_times else "-"),
        ("B: `NoveltyIndex.max_similarity`, fresh texts, final pool", len(max_times), mx, f"{ref / mx:,.0f}x"),
    ]
    cmd = (".venv/bin/python benchmarks/novelty_index.py" + (f" --pool {args.pool}" if args.pool != 50_000 else "")
           + (f" --candidates {args.candidates}" if args.candidates != 200 else "")
           + (f" --reference {args.reference}" if args.reference != 5 else ""))
    lines = [
        "# ROUGE-L novelty filter: NoveltyIndex vs the rouge_score loop (CPU)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine()}. rouge-score 0.1.2 reference, rapidfuzz {__import__('rapidfuzz').__version__}, "
        f"numpy {np.__version__}.",
        "",
        f"Pool: {args.pool:,} instructions, each a random one of the {len(seeds)} Self-Instruct seeds with each word "
        f"replaced (p={args.rate}) by a random word of the {len(vocab)}-word seed vocabulary (seed {args.seed}); "
        f"threshold {t}. Candidates: {half} near-duplicates (5-20% of words replaced) and {args.candidates - half} "
        f"novel ones (80% replaced), shuffled, checked in order (the pool grows by the {n_kept} kept). "
        "Medians of per-candidate wall time; one process, one thread.",
        "",
        "| per candidate | candidates | median | speed-up vs A |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {name} | {n} | {ms(v)} | {ratio} |" for name, n, v, ratio in rows],
        "",
        f"Pool build: generating the texts {t_texts:.2f} s; `NoveltyIndex(texts=pool)` {t_index:.2f} s "
        f"(tokenise, encode, postings); C's token-id lists {t_exh:.2f} s.",
        "",
        "Decisions:",
        f"- A vs B on the {args.reference} reference-timed candidates: {ref_ok}/{args.reference} identical "
        "(keep/reject, and the kept one's score equal to the reference max).",
        f"- C vs B on all {len(candidates)} candidates: {len(candidates) - len(mismatches)}/{len(candidates)} identical "
        "decisions (kept: score == exhaustive max; rejected: score is an item's score above the threshold); "
        f"`max_similarity` equal to the exhaustive max on {len(probes) - max_bad}/{len(probes)} fresh texts.",
        f"- Kept {n_kept}, rejected {len(rejected_times)}.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    if mismatches or max_bad or ref_ok != args.reference:
        raise SystemExit(f"decision mismatch: candidates {mismatches}, max_similarity {max_bad}, reference {ref_ok}")


if __name__ == "__main__":
    main()
