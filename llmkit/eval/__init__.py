"""Evaluation: perplexity, BLEU, ROUGE (N, L, Lsum, S, SU), BERTScore and exact match.

    from llmkit.eval import perplexity, bleu, rouge, bertscore
    bleu(predictions, references)["bleu"]

Each metric lives in its own module and is also a Hugging Face `evaluate` module that loads offline
from a local path: `evaluate.load(llmkit.eval.module_path("bleu"))`. `llmkit eval SUITE.yaml`
(llmkit/eval/suite.py) generates from a model and scores, or scores files of predictions.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

# The metrics load on first use (PEP 562): rouge pulls in nltk and scipy (~2.5 s), which a recipe that
# imports llmkit.eval.heldout, or `llmkit train --print-config`, does not need.
_LAZY = {"bertscore": ("llmkit.eval.bertscore", "bertscore"), "bleu": ("llmkit.eval.bleu", "bleu"),
         "exact_match": ("llmkit.eval.heldout", "exact_match_multi"),
         "perplexity": ("llmkit.eval.perplexity", "perplexity"), "rouge": ("llmkit.eval.rouge", "rouge")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    fn = globals()[name] = getattr(importlib.import_module(module), attr)
    return fn


class _Metrics(types.ModuleType):
    """Importing the submodule `llmkit.eval.bleu` sets this package's `bleu` to that module, which would
    hide the function `from llmkit.eval import bleu` means: the package keeps the functions' names."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Metrics


__all__ = ["bertscore", "bleu", "exact_match", "module_path", "perplexity", "rouge"]

MODULES = ("bleu", "rouge", "bertscore", "exact_match", "perplexity")


def module_path(name: str) -> str:
    """Directory of llmkit's `evaluate` module for metric `name`, for `evaluate.load(path)`."""
    from llmkit.errors import EvalInputError

    if name not in MODULES:
        raise EvalInputError(f"no evaluate module {name!r}; llmkit has: {', '.join(MODULES)}")
    return str(Path(__file__).parent / "modules" / f"llmkit_{name}")
