"""report.md for a classify run: the figures, the loss curve and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import image, md_table, num, plot_confusion, plot_curves, read_json, save_report
from llmkit.tracking import read_history


def write_report(out: Path, cfg, metrics: dict, data, confusion: list[list[int]]) -> Path:
    history = read_history(out / "history.jsonl")
    curve = plot_curves(history, [("loss", "eval_loss"), "eval_accuracy", "lr", "grad_norm"], out / "loss.png", title=f"{cfg.method.name}: training curves")
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
            *([["weights kept (train.keep_best)", f"step {metrics['best_step']}, held-out loss "
                f"{num(metrics['best_eval_loss'])}{', stopped early' if metrics.get('stopped_early') else ''}"]]
              if "best_step" in metrics else []),
        ]),
        "",
    ]
    if curve:
        lines += ["## Training curves", "", "Loss (and held-out loss and accuracy at each `train.eval_steps` evaluation), "
                  "learning rate and gradient norm per optimizer step.", "", "![training curves](loss.png)", ""]
    lines += ["## Confusion matrix (rows: true, columns: predicted)", "",
              md_table(["true \\ predicted"] + data.labels, [[lab] + row for lab, row in zip(data.labels, confusion)]),
              "", "![confusion matrix](confusion.png)", ""]
    return save_report(out, lines)


# ----------------------------------------------------------------------------- in a pipeline's report


def summary_line(m: dict) -> str:
    return f"accuracy {num(m.get('accuracy'))}, macro-F1 {num(m.get('macro_f1'))}, {m.get('trainable_params', 0):,} trainable params"


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    """Every classify stage in one table, with the plot of a compare stage over them when there is one."""
    rows = []
    for s in stages:
        m = read_json(s.out / "metrics.json")
        share = f"{100 * m['trainable_params'] / m['total_params']:.2f}%" if m.get("total_params") else ""
        rows.append([s.title, num(m.get("accuracy")), num(m.get("macro_f1")), f"{m.get('trainable_params', 0):,}", share,
                     f"{m.get('train_seconds', 0):.0f}", f"{m.get('peak_memory_mb', 0):,.0f}"])
    model = read_json(stages[0].out / "metrics.json").get("model")
    lines = [f"Every method on the same encoder{f' (`{model}`)' if model else ''} and the same test split.", "",
             md_table(["method", "test accuracy", "macro F1", "trainable params", "share", "train time (s)", "peak RSS (MB)"], rows), ""]
    outs = {str(s.out) for s in stages}
    plots = [s.out / "compare.png" for s in pipeline.stages if s.runs and set(s.runs) <= outs]
    if plots:
        lines += image(plots[0], root, "accuracy against trainable parameters and training time")
    return "Classification: every method side by side", lines


def headline(stages: list, pipeline) -> list[list[str]]:
    scored = [(read_json(s.out / "metrics.json").get("accuracy") or 0.0, s.title) for s in stages]
    lo, hi = min(scored, key=lambda x: x[0]), max(scored, key=lambda x: x[0])
    return [["classification", "test accuracy, lowest -> highest method", f"{num(lo[0])} ({lo[1]})", f"{num(hi[0])} ({hi[1]})"]]
