"""Corpus BLEU (Papineni et al., 2002, https://aclanthology.org/P02-1040) of predictions against
one or more references per row, with optional sentence BLEU per row.

This is a thin wrapper over sacrebleu's `BLEU` metric (Post, 2018,
https://aclanthology.org/W18-6319), the reference implementation: it owns tokenization, n-gram
clipping, brevity penalty and smoothing, so scores (and the signature string that records those
settings) are comparable with published numbers. No n-gram code lives here.

Defaults are sacrebleu's: 13a tokenizer, case-sensitive, corpus BLEU with exp smoothing and no
effective order (as `sacrebleu.corpus_bleu`); per-row scores use effective order (as
`sacrebleu.sentence_bleu`), since sentence BLEU without it is 0 for any sentence that lacks a
matching 4-gram.

    from llmkit.eval.bleu import bleu
    bleu(["the cat sat"], [["the cat sat", "a cat sat"]])["bleu"]
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU

from llmkit.errors import EvalInputError
from llmkit.eval._inputs import check_pairs


def bleu(predictions: Sequence[str], references: Sequence, *, tokenize: str = "13a",
         lowercase: bool = False, per_row: bool = False) -> dict:
    """Corpus BLEU of `predictions` against `references` (a string or a list of strings per row).

    Returns {"bleu" (0-100), "precisions" (1- to 4-gram, percent), "brevity_penalty", "sys_len",
    "ref_len", "signature"} and, with per_row=True, "per_row": sentence BLEU of each row."""
    preds, refs = check_pairs(predictions, references, metric="bleu")
    if tokenize not in BLEU.TOKENIZERS:
        raise EvalInputError(f"bleu: unknown tokenize {tokenize!r}; sacrebleu knows {', '.join(BLEU.TOKENIZERS)}")

    # sacrebleu takes references as streams (stream k holds every row's k-th reference), all of
    # equal length. Rows with fewer references are padded with None, which sacrebleu drops per
    # row; padding with "" would instead add an empty reference that can win the closest-length
    # choice and change the brevity penalty.
    n_streams = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(n_streams)]
    metric = BLEU(lowercase=lowercase, tokenize=tokenize)
    score = metric.corpus_score(preds, streams)
    out = {
        "bleu": score.score,
        "precisions": list(score.precisions),
        "brevity_penalty": score.bp,
        "sys_len": score.sys_len,
        "ref_len": score.ref_len,
        "signature": str(metric.get_signature()),  # nrefs:var when rows differ in reference count
    }
    if per_row:
        # a separate metric object: sentence_score resets the reference count in the signature
        sentence = BLEU(lowercase=lowercase, tokenize=tokenize, effective_order=True)
        out["per_row"] = [sentence.sentence_score(p, r).score for p, r in zip(preds, refs)]
    return out
