"""The report of a pipeline run: `OUTPUT/report.md` and its one-file HTML twin `report.html`.

Built from what each stage wrote, in stage order. Every stage kind brings its own pieces through
its registry record (`llmkit.recipes`): the progress line (`summary_line`), its report section
(`section`; a `grouped` kind such as eval or classify gets one section for all its stages) and
its rows in the results table at the top (`headline`). This module only lays them out.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from llmkit import recipes
from llmkit.report import md_table, read_json, save_report


def metrics(stage) -> dict:
    """What the stage's finished run wrote last (its done file)."""
    data = read_json(stage.out / recipes.get(stage.kind).done_file)
    return {"runs": data} if isinstance(data, list) else data


def summary(stage) -> str:
    """The stage's key figures in one line (the pipeline's progress line)."""
    line = recipes.get(stage.kind).summary_line
    return line(metrics(stage)) if line else str(stage.out)


def _by_kind(pipeline) -> dict[str, list]:
    """Stages grouped by kind, kinds in order of their first stage."""
    groups: dict[str, list] = {}
    for s in pipeline.stages:
        groups.setdefault(s.kind, []).append(s)
    return groups


def headline_rows(pipeline) -> list[list[str]]:
    """[stage, measure, before, after] for the results table (and the quickstart's closing lines)."""
    rows = []
    for kind, stages in _by_kind(pipeline).items():
        make = recipes.get(kind).headline
        rows += make(stages, pipeline) if make else []
    return rows


def _sections(pipeline, root) -> list[tuple[str, list[str]]]:
    groups, out = _by_kind(pipeline), []
    for s in pipeline.stages:
        rec = recipes.get(s.kind)
        if rec.section is None or (rec.grouped and s is not groups[s.kind][0]):
            continue
        heading, lines = rec.section(groups[s.kind] if rec.grouped else [s], pipeline, root)
        if not rec.grouped and s.title.lower() != heading.lower():
            heading = f"{heading}: {s.title}"
        out.append((heading, lines))
    return out


def write_report(pipeline, record: dict, command: str | None = None) -> Path:
    import torch

    root = pipeline.output
    total = sum(e.get("seconds", 0.0) for e in record.get("stages", {}).values())
    machine = (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores"
               + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU")
               + f"; torch {torch.__version__}")
    lines = [f"# {pipeline.name}", ""]
    if pipeline.description:
        lines += [pipeline.description.strip(), ""]
    lines += [f"{len(pipeline.stages)} stages{' (`--fast`: tiny models, a few steps each)' if pipeline.fast else ''}, "
              f"{total / 60:.1f} min of stage time on {machine}."
              + (f" Command: `{command}`." if command else "") + f" Pipeline: `{pipeline.path}`.", ""]
    lines += ["## Results", "", md_table(["stage", "measured", "before", "after"], headline_rows(pipeline)), ""]
    for n, (heading, body) in enumerate(_sections(pipeline, root), 1):
        lines += [f"## {n}. {heading}", "", *body]
    times = [[s.title, s.kind, f"{record['stages'].get(s.name, {}).get('seconds', 0):.0f}",
              os.path.relpath(s.out / recipes.get(s.kind).report_file, root)] for s in pipeline.stages]
    lines += ["## Stages", "", "Each stage is a normal llmkit run with its own report; its command is the first line "
              "of its log (`<stage>.log` here).", "",
              md_table(["stage", "kind", "time (s)", "its report"], times), ""]
    return save_report(root, lines)
