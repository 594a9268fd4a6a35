"""Small helpers for the human reports every run writes: Markdown tables and PNG plots."""

from __future__ import annotations

import os
from pathlib import Path


def fmt(v) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def pct(v) -> str:
    """A share as a percentage with one decimal; n/a when missing."""
    return "n/a" if v is None else f"{100 * v:.1f}%"


def num(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def read_json(path: Path) -> dict:
    """A finished run's JSON file, {} when it is not there."""
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def image(path: Path, root: Path, alt: str) -> list[str]:
    """A Markdown image line for a report in `root` (nothing when the plot was not drawn)."""
    import os

    return [f"![{alt}]({os.path.relpath(path, root)})", ""] if path.is_file() else []


def cell(text, n: int = 120) -> str:
    """Text for one Markdown table cell: whitespace collapsed, pipes escaped, cut at n characters."""
    if text is None:
        return ""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= n else text[:n - 1] + "…"


def md_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, title: str = "") -> Path:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return Path(path)


def plot_curves(history: list[dict], keys: list, path: str | Path, title: str = "", x: str = "step") -> Path | None:
    """Line plots of `keys` against `x` from history records, three panels to a row (each stays legible
    when the page is 1,280 px wide); a tuple of keys shares one panel with a legend (training loss and
    held-out loss). None when there is nothing to plot."""
    panels = []
    for key in keys:
        group = key if isinstance(key, tuple) else (key,)
        series = {k: [(r[x], r[k]) for r in history if r.get(k) is not None and x in r] for k in group}
        series = {k: v for k, v in series.items() if v}
        if series:
            panels.append((" / ".join(series), series))
    if not panels:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, series) in zip(axes.flat, panels):
        for k, pts in series.items():
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=k)
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and updates are whole numbers
        ax.set_xlabel(x)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    return _save(fig, path, title)


def plot_confusion(matrix, labels: list[str], path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(matrix[i][j]), ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_histograms(series: dict[str, list[float]], path: str | Path, title: str = "", bins: int = 20) -> Path | None:
    """One histogram per named list of per-row scores; None when there is nothing to plot."""
    series = {k: [v for v in vs if v is not None] for k, vs in series.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 3.0), squeeze=False)
    for ax, (k, vs) in zip(axes[0], series.items()):
        ax.hist(vs, bins=bins, color="#4878a8")
        ax.axvline(sum(vs) / len(vs), color="#c44e52", lw=1.5, label=f"mean {sum(vs) / len(vs):.3g}")
        ax.set_title(k)
        ax.set_ylabel("rows")
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def provenance(out: Path) -> list[str]:
    """The last section of every report: the command that wrote it (the CLI records it in LLMKIT_COMMAND)
    and the run's resolved settings from its config.yaml, so a reader can make the run again."""
    lines = []
    if command := os.environ.get("LLMKIT_COMMAND"):
        world = int(os.environ.get("WORLD_SIZE", "1"))
        launch = f" (under `accelerate launch`, {world} processes)" if world > 1 else ""
        lines += [f"Command{launch}:", "", "```bash", command, "```", ""]
    config = Path(out) / "config.yaml"
    if config.is_file():
        lines += ["Resolved config (`config.yaml`: defaults < recipe < overrides):", "", "```yaml",
                  config.read_text().rstrip(), "```", ""]
    return ["## How this run was made", "", *lines] if lines else []


def save_report(out: Path, lines: list[str]) -> Path:
    """Write out/report.md and its one-file HTML twin out/report.html (plots embedded); the report ends
    with how the run was made."""
    from llmkit import faults
    from llmkit.html_report import write_html

    path = Path(out) / "report.md"
    path.write_text("\n".join([*lines, *provenance(out)]))
    faults.point("report")
    write_html(path)
    return path
