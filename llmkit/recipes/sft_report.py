"""report.md for an sft run: before/after on the held-out set, the loss curve, sample generations."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import cell, image, md_table, num, pct, plot_curves, read_json, save_report
from llmkit.tracking import read_history


def write_report(out: Path, cfg, metrics: dict, samples: list[dict]) -> Path:
    curve = plot_curves(read_history(out / "history.jsonl"), [("loss", "eval_loss"), "eval_exact_match", "lr", "grad_norm"],
                        out / "loss.png", title=f"sft {cfg.method.name}: training curves")
    rows = []
    for key, label in (("eval_loss", "held-out loss (completion tokens)"), ("eval_perplexity", "held-out perplexity"),
                       ("eval_exact_match", "held-out exact match")):
        rows.append([label, metrics.get(f"base_{key}"), metrics.get(key)])
    share = 100 * metrics["trainable_params"] / metrics["total_params"]
    lines = [
        f"# sft: {cfg.method.name} on {cfg.model.name}", "",
        f"{metrics['num_train']:,} training examples ({metrics['format']}), {metrics['num_test']:,} held out.", "",
        *_sources(metrics),
        md_table(["", "base model", "after finetuning"], rows), "",
        md_table(["figure", "value"], [
            ["trainable parameters", f"{metrics['trainable_params']:,} ({share:.3f}% of {metrics['total_params']:,})"],
            ["final training loss (mean over the run)", metrics["train_loss"]],
            ["tokens / second", metrics["tokens_per_second"]],
            ["training time (s)", metrics["train_seconds"]],
            [f"peak memory (MB, {metrics['peak_memory_kind']})", metrics["peak_memory_mb"]],
        ]), "",
    ]
    if "best_step" in metrics:
        lines += [f"The weights saved are step {metrics['best_step']}'s, the lowest held-out loss "
                  f"({num(metrics['best_eval_loss'])}) of the evaluations during training"
                  + ("; training stopped early there." if metrics.get("stopped_early") else "."), ""]
    if curve:
        lines += ["## Training curves", "", "Loss (and held-out loss at each `train.eval_steps` evaluation), "
                  "learning rate and gradient norm per optimizer step.", "", "![training curves](loss.png)", ""]
    if samples:
        lines += ["## Sample generations (held out)", "",
                  md_table(["prompt", "reference", "base", "finetuned"],
                           [[cell(s["prompt"]), cell(s["reference"]), cell(s["base"]), cell(s["finetuned"])] for s in samples]), ""]
    return save_report(out, lines)


def _sources(m: dict) -> list[str]:
    """Where the rows came from; for a mixture (a list data.path), a table of what each source gave."""
    if m.get("data_mix"):
        return [md_table(["source", "split", "training rows", "trained on", "held out (tested)"],
                         [[f"`{p['path']}`", p["split"], p["rows"], p["train_rows"], p["test_rows"]]
                          for p in m["data_mix"]]), ""]
    if m.get("train_source"):
        return [f"Training rows: `{m['train_source']}`; held out: `{m['test_source']}`.", ""]
    return []


# ----------------------------------------------------------------------------- in a pipeline's report


def summary_line(m: dict) -> str:
    loss = f"held-out loss {num(m.get('base_eval_loss'))} -> {num(m.get('eval_loss'))}"
    if m.get("eval_exact_match") is None:
        return loss
    return f"held-out exact match {pct(m.get('base_eval_exact_match'))} -> {pct(m.get('eval_exact_match'))}, {loss}"


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    (stage,) = stages
    m = read_json(stage.out / "metrics.json")
    rows = [["held-out exact match", pct(m.get("base_eval_exact_match")), pct(m.get("eval_exact_match"))],
            ["held-out loss (answer tokens)", num(m.get("base_eval_loss")), num(m.get("eval_loss"))],
            ["held-out perplexity", num(m.get("base_eval_perplexity"), 2), num(m.get("eval_perplexity"), 2)]]
    rows = [r for r in rows if r[2] != "n/a"]  # exact match is left to the evaluation stages when eval.num_generate=0
    intro = (f"{m.get('method')} on `{m.get('model')}`: {m.get('num_train', 0):,} training examples, "
             f"{m.get('trainable_params', 0):,} of {m.get('total_params', 0):,} parameters trained, {m.get('train_seconds', 0):.0f} s.")
    lines = [intro, "", md_table(["", "base model", "after SFT"], rows), ""]
    return "Supervised finetuning", lines + image(stage.out / "loss.png", root, "SFT loss")


def headline(stages: list, pipeline) -> list[list[str]]:
    rows = []
    for s in stages:
        m = read_json(s.out / "metrics.json")
        if m.get("eval_exact_match") is not None:
            rows.append([s.title, "held-out exact match, base -> SFT", pct(m.get("base_eval_exact_match")), pct(m.get("eval_exact_match"))])
        rows.append([s.title, "held-out loss on the answer tokens, base -> SFT", num(m.get("base_eval_loss")), num(m.get("eval_loss"))])
    return rows
