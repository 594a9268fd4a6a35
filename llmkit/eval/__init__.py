"""Evaluation: perplexity, BLEU, ROUGE (N, L, Lsum, S, SU), BERTScore and exact match.

    from llmkit.eval import perplexity, bleu, rouge, bertscore
    bleu(predictions, references)["bleu"]

Each metric lives in its own module and is also a Hugging Face `evaluate` module that loads offline
from a local path: `evaluate.load(llmkit.eval.module_path("bleu"))`. `llmkit eval SUITE.yaml`
(llmkit/eval/suite.py) generates from a model and scores, or scores files of predictions.
"""

from __future__ import annotations

from pathlib import Path

from llmkit.eval.bertscore import bertscore
from llmkit.eval.bleu import bleu
from llmkit.eval.heldout import exact_match_multi as exact_match
from llmkit.eval.perplexity import perplexity
from llmkit.eval.rouge import rouge

__all__ = ["bertscore", "bleu", "exact_match", "module_path", "perplexity", "rouge"]

MODULES = ("bleu", "rouge", "bertscore", "exact_match", "perplexity")


def module_path(name: str) -> str:
    """Directory of llmkit's `evaluate` module for metric `name`, for `evaluate.load(path)`."""
    from llmkit.errors import EvalInputError

    if name not in MODULES:
        raise EvalInputError(f"no evaluate module {name!r}; llmkit has: {', '.join(MODULES)}")
    return str(Path(__file__).parent / "modules" / f"llmkit_{name}")
