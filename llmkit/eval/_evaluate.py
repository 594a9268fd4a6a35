"""What llmkit's Hugging Face `evaluate` modules (llmkit/eval/modules/) share: the module scripts
stay one-class shims, so `evaluate.load(path)` can copy each into its cache on its own."""

from __future__ import annotations


def text_pair_info(description: str, citation: str = ""):
    """MetricInfo for metrics over predictions and references (a string or a list per prediction)."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description="predictions: list of strings; references: a string or a list of strings per prediction",
        features=[
            datasets.Features({"predictions": datasets.Value("string"),
                               "references": datasets.Sequence(datasets.Value("string"))}),
            datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        ],
    )
