"""Compare finished runs, each kind on its own figures: classify's test accuracy, sft's held-out loss,
reward's pairwise accuracy, ppo's reward, an evaluation suite's scores, with what each run cost
(trainable parameters, training time; Raschka, Machine Learning Q&A, figure 19.3, as a plot of real
runs). Runs of several kinds get one table each. A kind's figures are its registry record's `compare`.

    llmkit compare runs/classify-feature_based runs/classify-last_layers runs/classify-full
    llmkit compare runs/sft-lora runs/sft-full runs/sft-prefix
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from llmkit import faults, recipes
from llmkit.errors import LlmkitError
from llmkit.recipes import Recipe
from llmkit.report import _plt, md_table
from llmkit.tracking import check_output_dir, write_json

COSTS = ("trainable_params", "train_seconds")


def load_run(run_dir: str | Path) -> dict:
    """A finished run's metrics with its kind, label and headline figure; errors name the file."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise LlmkitError(f"{run_dir}: no metrics.json (not a finished run)")
    metrics = _read(path, json.loads)
    if not isinstance(metrics, dict):
        raise LlmkitError(f"{path}: is not a run's metrics (a JSON object)")
    config = _read(run_dir / "config.yaml", yaml.safe_load) if (run_dir / "config.yaml").is_file() else {}
    config = config if isinstance(config, dict) else {}
    kind = config.get("kind") or "classify"  # runs from before config.yaml named its kind were classify runs
    spec = _spec(kind, run_dir)
    headline = next((k for k in spec.headline if k in metrics), None)
    required = [*([headline or spec.headline[0]] if spec.costs or headline else []), *(COSTS if spec.costs else ())]
    for key in required:
        if key not in metrics:
            raise LlmkitError(f"{path}: has no `{key}`; compare needs {', '.join(required)} for a {kind} run")
        _number(metrics[key], key, path)
    method = config.get("method")
    label = (method.get("name") if isinstance(method, dict) else None) or metrics.get("method") or run_dir.name
    return {"dir": str(run_dir), "kind": kind, "label": label, "headline": headline, **metrics}


def _spec(kind, run_dir: Path):
    compared = [k for k in recipes.KINDS if getattr(recipes.get(k), "compare", None)]
    if kind not in compared:
        raise LlmkitError(f"{run_dir}: a {kind!r} run; compare reads runs of: {', '.join(compared)}")
    return recipes.get(kind).compare


def _number(value, key: str, path: Path) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LlmkitError(f"{path}: `{key}` is {value!r}, not a number")


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
    kinds = list(dict.fromkeys(r["kind"] for r in runs))
    lines = ["# Run comparison", "",
             "Each kind on its own figures, with what each run cost: trainable parameters (share of the model) "
             "and wall-clock training time.", ""]
    for kind in kinds:
        of_kind = [r for r in runs if r["kind"] == kind]
        lines += [f"## {kind} ({len(of_kind)} runs)", "", _table(of_kind, recipes.get(kind).compare), ""]
    plotted = [k for k in kinds if recipes.get(k).compare.costs]
    if plotted:
        _plot(runs, plotted, out / "compare.png")
        lines += ["![each kind's headline figure against trainable parameters and training time](compare.png)", ""]
    (out / "compare.md").write_text("\n".join(lines))
    faults.point("report")
    write_json(out / "compare.json", runs)  # last: its presence marks a finished comparison
    return out / "compare.md"


def _table(runs: list[dict], spec) -> str:
    heads = list(dict.fromkeys(r["headline"] for r in runs if r["headline"]))
    columns = [(k, k) for k in heads] + [(k, label) for k, label in spec.columns if k not in heads]
    columns = [(k, label) for k, label in columns if any(r.get(k) is not None for r in runs)]
    costs = ["trainable params", "trainable share", "train time (s)", "peak memory (MB)"] if spec.costs else []
    rows = []
    for r in runs:
        cost = [r["trainable_params"], f"{100 * r['trainable_params'] / r['total_params']:.3f}%" if r.get("total_params") else "",
                r["train_seconds"], r.get("peak_memory_mb")] if spec.costs else []
        rows.append([r["label"], *[r.get(k) for k, _ in columns], *cost, r["dir"]])
    return md_table(["run", *[label for _, label in columns], *costs, "directory"], rows)


def _plot(runs: list[dict], kinds: list[str], path: Path) -> None:
    """One row per kind: its headline against trainable parameters and against training time (log x)."""
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 3.8 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        of_kind = [r for r in runs if r["kind"] == kind]
        spec = recipes.get(kind).compare
        key = of_kind[0]["headline"]
        better = "higher" if spec.higher_is_better else "lower"
        for ax, cost, xlabel in ((row[0], "trainable_params", "trainable parameters (log)"),
                                 (row[1], "train_seconds", "training time, s (log)")):
            for r in of_kind:
                if r.get(key) is None:
                    continue
                x = max(r[cost], 1e-3)
                ax.scatter(x, r[key], s=60)
                ax.annotate(r["label"], (x, r[key]), textcoords="offset points", xytext=(6, 4), fontsize=9)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
            ax.margins(x=0.3, y=0.2)  # room for the point labels
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{key} ({better} is better)")
            ax.set_title(kind)
            ax.grid(alpha=0.3, which="both")
    fig.suptitle("Each run's figure against what it cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary_line(runs: dict) -> str:
    return f"{len(runs['runs'])} runs compared"


RECIPE = Recipe(kind="compare", verb="compare", done_file="compare.json", report_file="compare.md",
                summary_line=_summary_line)
