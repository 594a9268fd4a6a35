"""llmkit's exact match as a Hugging Face `evaluate` module that loads from this directory, offline.

    import evaluate, llmkit.eval
    metric = evaluate.load(llmkit.eval.module_path("exact_match"))
    metric.compute(predictions=[...], references=[...])

The fraction of predictions equal to a reference after stripping surrounding whitespace
(`llmkit.eval.heldout.exact_match`); with several references per row, any one may match.
"""

import evaluate

from llmkit.eval._evaluate import text_pair_info
from llmkit.eval.heldout import exact_match_multi


class LlmkitMetric(evaluate.Metric):
    def _info(self):
        return text_pair_info("Fraction of predictions equal to a reference after stripping surrounding whitespace.",
                              "")

    def _compute(self, predictions, references):
        return {"exact_match": exact_match_multi(predictions, references)}
