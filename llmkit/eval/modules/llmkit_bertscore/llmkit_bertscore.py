"""llmkit's bertscore as a Hugging Face `evaluate` module that loads from this directory, offline.

    import evaluate, llmkit.eval
    metric = evaluate.load(llmkit.eval.module_path("bertscore"))
    metric.compute(predictions=[...], references=[...], model="minilm")

Thin shim: the computation is `llmkit.eval.bertscore.bertscore` (see its docstring); this file only declares the
inputs so that `evaluate.combine` and a Trainer's `compute_metrics` can use it.
"""

import evaluate

from llmkit.eval._evaluate import text_pair_info
from llmkit.eval.bertscore import bertscore


class LlmkitMetric(evaluate.Metric):
    def _info(self):
        return text_pair_info("BERTScore precision, recall and F1 (greedy cosine matching of contextual embeddings), equal to the bert_score package for the same model and layer; offline with any local encoder.",
                              "Zhang et al. (2020), BERTScore: Evaluating Text Generation with BERT.")

    def _compute(self, predictions, references, **kwargs):
        return bertscore(predictions, references, **kwargs)
