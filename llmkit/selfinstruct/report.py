"""report.md of a Self-Instruct run: counts per stage and per filter, and plots of what was kept
(max ROUGE-L to the pool, instruction length, most common leading verbs), with examples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from llmkit.report import (
    _plt,
    _save,
    cell,
    image,
    md_table,
    plot_histograms,
    read_json,
    save_report,
)


def leading_verbs(instructions: list[str], top: int = 15) -> list[tuple[str, int]]:
    """The most common first words (lower-cased), the paper's proxy for the diversity of task kinds."""
    words = [i.split()[0].strip(".,:;!?\"'()").lower() for i in instructions if i.split()]
    return Counter(w for w in words if w).most_common(top)


def plot_verbs(verbs: list[tuple[str, int]], path: Path) -> Path | None:
    if not verbs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(verbs) + 1.2))
    names, counts = zip(*reversed(verbs))
    ax.barh(names, counts, color="#4878a8")
    ax.set_xlabel("kept instructions")
    return _save(fig, path, "Most common leading words")


def write_report(out: Path, cfg, stats: dict, kept: list[dict], rejected: list[dict], tasks: list[dict]) -> Path:
    from llmkit.selfinstruct.filters import REASONS

    b, c, i, e = stats["bootstrap"], stats["classify"], stats["instances"], stats["export"]
    lines = [f"# Self-Instruct: {b['kept']} new instructions", "",
             f"Model `{stats['model'] or cfg.backend.model}` ({cfg.backend.kind}), seeds `{cfg.seeds}` "
             f"({stats['num_seeds']} tasks), target {cfg.num_instructions} instructions, seed {cfg.seed}.", "",
             "## Stages", "",
             md_table(["stage", "in", "out", "notes"], [
                 ["bootstrap", f"{b['prompts']} prompts in {b['rounds']} rounds", f"{b['kept']} kept of {b['candidates']} candidates",
                  f"{b['replies_cut_at_limit']} replies cut at the token limit (their last item dropped)"],
                 ["classify", f"{c['done']} instructions", f"{c['classification']} classification, {c['other']} other", ""],
                 ["instances", f"{i['tasks_done']} tasks, {i['parsed']} parsed instances", f"{i['kept']} instances kept",
                  f"{i['tasks_with_instances']} tasks with at least one"],
                 ["export", f"{e['tasks']} tasks ({e['machine_tasks']} machine)", f"{e['examples']} examples",
                  f"finetune.jsonl ({e['machine_examples']} machine-generated)"],
             ]), ""]
    rows = [[code, n, REASONS.get(code, "")] for code, n in b["rejected_by"].items()]
    rows += [[f"instance: {code}", n, REASONS.get(code, "")] for code, n in i["dropped_by"].items()]
    rows += [[f"task: {code}", n, "task left with no instances"] for code, n in i["tasks_without"].items()]
    if rows:
        lines += ["## Filters", "", md_table(["filter", "rejected", "what it means"], rows), ""]

    plots = []
    scores = [k["max_rouge_l"] for k in kept]
    if plot_histograms({"max ROUGE-L F1 to the pool": scores, "instruction length (words)":
                        [len(k["instruction"].split()) for k in kept]}, out / "kept.png", title="Kept instructions"):
        plots.append("![max ROUGE-L to the pool and length of kept instructions](kept.png)")
    verbs = leading_verbs([k["instruction"] for k in kept])
    if plot_verbs(verbs, out / "verbs.png"):
        plots.append("![most common leading words](verbs.png)")
    if plots:
        lines += ["## What was kept", "", f"Novelty threshold: ROUGE-L F1 > {cfg.filters.rouge_threshold} to any pool "
                  f"instruction rejects. Most common leading words: "
                  + ", ".join(f"{w} ({n})" for w, n in verbs[:10]) + ".", "", *plots, ""]

    if tasks:
        ex = [[cell(t["instruction"], 80), "yes" if t["is_classification"] else "no",
               cell(t["instances"][0]["input"], 50), cell(t["instances"][0]["output"], 50), len(t["instances"])]
              for t in tasks[:8]]
        lines += ["## Examples of generated tasks", "", md_table(["instruction", "classification", "input", "output", "instances"], ex), ""]
    by_reason: dict[str, dict] = {}
    for r in rejected:
        by_reason.setdefault(r["reason"], r)
    if by_reason:
        lines += ["## One rejected candidate per filter", "",
                  md_table(["filter", "candidate"], [[k, cell(v["instruction"], 110)] for k, v in by_reason.items()]), ""]
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in stats["seconds"].items())
    lines += ["## Files", "", "`instructions.jsonl` (kept, with the prompt's seed and machine ids, max ROUGE-L, model), "
              "`rejected.jsonl` (with the filter), `prompts.jsonl` (every prompt's reply), `classification.jsonl`, "
              "`instances.jsonl`, `finetune.jsonl` (the sft recipe's messages format: "
              f"`llmkit train recipes/sft/lora.yaml data.path={out}/finetune.jsonl`), `stats.json`."
              + (f" Time: {secs}." if secs else ""), ""]
    return save_report(out, lines)


# ----------------------------------------------------------------------------- in a pipeline's report


def summary_line(m: dict) -> str:
    b, e = m["bootstrap"], m["export"]
    return (f"kept {b['kept']} of {b['candidates']} generated instructions, "
            f"{e['examples']} finetuning examples ({e['machine_examples']} machine-made)")


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    (stage,) = stages
    m = read_json(stage.out / "stats.json")
    b, e = m["bootstrap"], m["export"]
    rejected = ", ".join(f"{k} {v}" for k, v in b["rejected_by"].items()) or "none"
    rows = [["seed tasks", m["num_seeds"]], ["target machine instructions", m["target"]],
            ["prompts to the model", b["prompts"]], ["candidate instructions", b["candidates"]],
            ["kept (passed the filters)", b["kept"]], ["rejected", f"{b['rejected']} ({rejected})"],
            ["tasks with instances", e["machine_tasks"]], ["finetuning examples (seeds + machine)", e["examples"]]]
    path = stage.out / "instructions.jsonl"
    kept = [json.loads(x) for x in path.read_text().splitlines()[:5]] if path.is_file() else []
    lines = [f"Model `{m['model']}` grew the seed set: {summary_line(m)}.", "", md_table(["", "count"], rows), ""]
    if kept:
        lines += ["First instructions kept:", ""] + [f"- {cell(k['instruction'], 140)}" for k in kept] + [""]
    return "Self-Instruct", lines + image(stage.out / "kept.png", root, "instructions kept per round")


def headline(stages: list, pipeline) -> list[list[str]]:
    rows = []
    for s in stages:
        b = read_json(s.out / "stats.json")["bootstrap"]
        rows.append([s.title, "machine instructions kept", "", f"{b['kept']} (of {b['candidates']})"])
    return rows
