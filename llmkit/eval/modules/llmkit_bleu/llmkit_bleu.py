"""llmkit's bleu as a Hugging Face `evaluate` module that loads from this directory, offline.

    import evaluate, llmkit.eval
    metric = evaluate.load(llmkit.eval.module_path("bleu"))
    metric.compute(predictions=[...], references=[...], tokenize="13a")

Thin shim: the computation is `llmkit.eval.bleu.bleu` (see its docstring); this file only declares the
inputs so that `evaluate.combine` and a Trainer's `compute_metrics` can use it.
"""

import evaluate

from llmkit.eval._evaluate import text_pair_info
from llmkit.eval.bleu import bleu


class LlmkitMetric(evaluate.Metric):
    def _info(self):
        return text_pair_info("Corpus BLEU exactly as sacrebleu computes it (0-100, tokenizer 13a by default), with n-gram precisions and brevity penalty.",
                              "Post (2018), A Call for Clarity in Reporting BLEU Scores; Papineni et al. (2002).")

    def _compute(self, predictions, references, **kwargs):
        return bleu(predictions, references, **kwargs)
