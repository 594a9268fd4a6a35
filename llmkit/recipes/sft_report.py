"""report.md for an sft run: before/after on the held-out set, the loss curve, sample generations."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import cell, md_table, plot_curves, save_report
from llmkit.tracking import read_history


def write_report(out: Path, cfg, metrics: dict, samples: list[dict]) -> Path:
    curve = plot_curves(read_history(out / "history.jsonl"), ["loss"], out / "loss.png",
                        title=f"sft {cfg.method.name}: training loss")
    rows = []
    for key, label in (("eval_loss", "held-out loss (completion tokens)"), ("eval_perplexity", "held-out perplexity"),
                       ("eval_exact_match", "held-out exact match")):
        rows.append([label, metrics.get(f"base_{key}"), metrics.get(key)])
    share = 100 * metrics["trainable_params"] / metrics["total_params"]
    lines = [
        f"# sft: {cfg.method.name} on {cfg.model.name}", "",
        f"{metrics['num_train']:,} training examples ({metrics['format']}), {metrics['num_test']:,} held out.", "",
        md_table(["", "base model", "after finetuning"], rows), "",
        md_table(["figure", "value"], [
            ["trainable parameters", f"{metrics['trainable_params']:,} ({share:.3f}% of {metrics['total_params']:,})"],
            ["final training loss (mean over the run)", metrics["train_loss"]],
            ["tokens / second", metrics["tokens_per_second"]],
            ["training time (s)", metrics["train_seconds"]],
            [f"peak memory (MB, {metrics['peak_memory_kind']})", metrics["peak_memory_mb"]],
        ]), "",
    ]
    if curve:
        lines += ["## Training loss", "", "![training loss](loss.png)", ""]
    if samples:
        lines += ["## Sample generations (held out)", "",
                  md_table(["prompt", "reference", "base", "finetuned"],
                           [[cell(s["prompt"]), cell(s["reference"]), cell(s["base"]), cell(s["finetuned"])] for s in samples]), ""]
    return save_report(out, lines)
