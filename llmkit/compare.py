"""Compare finished runs: accuracy against trainable parameters and training time, measured
(Raschka, Machine Learning Q&A, figure 19.3, as a plot of real runs).

    llmkit compare runs/classify-feature_based runs/classify-last_layers runs/classify-full
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from llmkit import faults
from llmkit.errors import LlmkitError
from llmkit.recipes import Recipe
from llmkit.report import _plt, md_table
from llmkit.tracking import check_output_dir, write_json


def load_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise LlmkitError(f"{run_dir}: no metrics.json (not a finished run)")
    metrics = _read(path, json.loads)
    if not isinstance(metrics, dict):
        raise LlmkitError(f"{path}: is not a run's metrics (a JSON object)")
    for key in ("accuracy", "trainable_params", "train_seconds"):
        if key not in metrics:
            raise LlmkitError(f"{path}: has no `{key}`; compare needs accuracy, trainable_params and train_seconds")
        if isinstance(metrics[key], bool) or not isinstance(metrics[key], (int, float)):
            raise LlmkitError(f"{path}: `{key}` is {metrics[key]!r}, not a number")
    config = _read(run_dir / "config.yaml", yaml.safe_load) if (run_dir / "config.yaml").is_file() else {}
    method = config.get("method") if isinstance(config, dict) else None
    label = (method.get("name") if isinstance(method, dict) else None) or metrics.get("method") or run_dir.name
    return {"dir": str(run_dir), "label": label, **metrics}


def _read(path: Path, parse):
    try:
        return parse(path.read_text())
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:  # JSONDecodeError is a ValueError
        raise LlmkitError(f"{path}: does not parse ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


def compare(run_dirs: list[str], output: str | Path) -> Path:
    runs = [load_run(d) for d in run_dirs]
    check_output_dir(output, inputs=run_dirs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows = [[r["label"], r["accuracy"], r.get("macro_f1"), r["trainable_params"],
             f"{100 * r['trainable_params'] / r['total_params']:.3f}%" if r.get("total_params") else "",
             r["train_seconds"], r.get("peak_memory_mb"), r["dir"]] for r in runs]
    table = md_table(["method", "accuracy", "macro F1", "trainable params", "trainable share",
                      "train time (s)", "peak memory (MB)", "run"], rows)
    _plot(runs, out / "compare.png")
    text = "\n".join([
        "# Method comparison", "",
        "Accuracy on the same test split against what each method costs: trainable parameters "
        "(log scale) and wall-clock training time.", "",
        table, "", "![accuracy against trainable parameters and training time](compare.png)", "",
    ])
    (out / "compare.md").write_text(text)
    faults.point("report")
    write_json(out / "compare.json", runs)  # last: its presence marks a finished comparison
    return out / "compare.md"


def _plot(runs: list[dict], path: Path) -> None:
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, xlabel in ((axes[0], "trainable_params", "trainable parameters (log)"),
                            (axes[1], "train_seconds", "training time, s (log)")):
        for r in runs:
            x = max(r[key], 1e-3)
            ax.scatter(x, 100 * r["accuracy"], s=60)
            ax.annotate(r["label"], (x, 100 * r["accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=9)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.margins(x=0.3, y=0.2)  # room for the point labels
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Accuracy vs. cost of each method")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary_line(runs: dict) -> str:
    return f"{len(runs['runs'])} methods compared"


RECIPE = Recipe(kind="compare", verb="compare", done_file="compare.json", report_file="compare.md",
                summary_line=_summary_line)
