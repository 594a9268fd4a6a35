"""report.md for a classify run: the figures, the loss curve and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import md_table, plot_confusion, plot_curves, save_report
from llmkit.tracking import read_history


def write_report(out: Path, cfg, metrics: dict, data, confusion: list[list[int]]) -> Path:
    history = read_history(out / "history.jsonl")
    curve = plot_curves(history, ["loss"], out / "loss.png", title=f"{cfg.method.name}: training loss")
    plot_confusion(confusion, data.labels, out / "confusion.png")
    share = 100 * metrics["trainable_params"] / metrics["total_params"]
    lines = [
        f"# classify: {cfg.method.name} on {cfg.model.name}",
        "",
        f"Trained on {metrics['num_train']:,} rows of `{data.train_source}`, tested on "
        f"{metrics['num_test']:,} rows of `{data.test_source}`.",
        "",
        md_table(["metric", "value"], [
            ["accuracy", metrics["accuracy"]],
            ["macro F1", metrics["macro_f1"]],
            ["trainable parameters", f"{metrics['trainable_params']:,} ({share:.3f}% of {metrics['total_params']:,})"],
            ["training time (s)", metrics["train_seconds"]],
            [f"peak memory (MB, {metrics['peak_memory_kind']})", metrics["peak_memory_mb"]],
            ["optimizer steps", metrics["optimizer_steps"]],
        ]),
        "",
    ]
    if curve:
        lines += ["## Training loss", "", "![training loss](loss.png)", ""]
    lines += ["## Confusion matrix (rows: true, columns: predicted)", "",
              md_table(["true \\ predicted"] + data.labels, [[lab] + row for lab, row in zip(data.labels, confusion)]),
              "", "![confusion matrix](confusion.png)", ""]
    return save_report(out, lines)
