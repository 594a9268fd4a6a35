"""llmkit's perplexity as a Hugging Face `evaluate` module that loads from this directory, offline.

    import evaluate, llmkit.eval
    metric = evaluate.load(llmkit.eval.module_path("perplexity"))
    metric.compute(predictions=texts, model_id="pico-llama", stride=128, max_length=256)

`model_id` is anything `llmkit sample` takes: a short name, a local model directory, or a run's
adapter directory. The computation is `llmkit.eval.perplexity.perplexity` (strided sliding window,
padding never counted); see its docstring.
"""

import datasets
import evaluate

from llmkit.eval.perplexity import perplexity
from llmkit.models.trained import load_causal

_DESCRIPTION = "Perplexity of a causal LM on texts (exp of the mean token NLL), strided sliding window for long texts."


class LlmkitMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description="predictions: list of texts to score; model_id: model name, directory or adapter directory",
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model_id, stride=None, max_length=None, batch_size=8):
        model, tokenizer = load_causal(model_id)
        return perplexity(model, tokenizer, predictions, stride=stride, max_length=max_length, batch_size=batch_size)
