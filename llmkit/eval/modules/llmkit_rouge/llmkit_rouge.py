"""llmkit's rouge as a Hugging Face `evaluate` module that loads from this directory, offline.

    import evaluate, llmkit.eval
    metric = evaluate.load(llmkit.eval.module_path("rouge"))
    metric.compute(predictions=[...], references=[...], use_stemmer=False)

Thin shim: the computation is `llmkit.eval.rouge.rouge` (see its docstring); this file only declares the
inputs so that `evaluate.combine` and a Trainer's `compute_metrics` can use it.
"""

import evaluate

from llmkit.eval._evaluate import text_pair_info
from llmkit.eval.rouge import rouge


class LlmkitMetric(evaluate.Metric):
    def _info(self):
        return text_pair_info("ROUGE-1/2/L/Lsum exactly as Google's rouge_score computes them, plus ROUGE-S and ROUGE-SU (skip-bigram) from Lin (2004).",
                              "Lin (2004), ROUGE: A Package for Automatic Evaluation of Summaries.")

    def _compute(self, predictions, references, **kwargs):
        return rouge(predictions, references, **kwargs)
