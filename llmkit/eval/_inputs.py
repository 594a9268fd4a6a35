"""Checks shared by every text metric: predictions and references line up, and every reference
entry is a string or a non-empty list of strings (multi-reference)."""

from __future__ import annotations

from collections.abc import Sequence

from llmkit.errors import EvalInputError


def check_pairs(predictions: Sequence[str], references: Sequence, *, metric: str,
                multi_ok: bool = True) -> tuple[list[str], list[list[str]]]:
    """Return (predictions, references as one list of strings per prediction).

    Raises EvalInputError naming the metric and the first offending row."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise EvalInputError(f"{metric}: predictions and references must be lists of strings, not one string")
    preds, refs = list(predictions), list(references)
    if not preds:
        raise EvalInputError(f"{metric}: no predictions to score (empty list)")
    if len(preds) != len(refs):
        raise EvalInputError(f"{metric}: {len(preds)} predictions but {len(refs)} references; they must pair up row by row")
    out: list[list[str]] = []
    for i, (p, r) in enumerate(zip(preds, refs)):
        if not isinstance(p, str):
            raise EvalInputError(f"{metric}: prediction at row {i} is {type(p).__name__}, expected a string")
        if isinstance(r, str):
            out.append([r])
            continue
        if not multi_ok:
            raise EvalInputError(f"{metric}: reference at row {i} is {type(r).__name__}; this metric takes one string per row")
        if not isinstance(r, (list, tuple)) or not r or not all(isinstance(x, str) for x in r):
            raise EvalInputError(f"{metric}: reference at row {i} must be a string or a non-empty list of strings, got {r!r:.80}")
        out.append(list(r))
    return preds, out
