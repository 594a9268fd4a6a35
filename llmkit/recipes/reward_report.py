"""report.md for a reward run: held-out accuracy before/after, the loss curve, ranked examples with rewards."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import cell, fmt, image, md_table, num, plot_curves, read_json, save_report
from llmkit.tracking import read_history


def write_report(out: Path, cfg, metrics: dict, examples: list[dict]) -> Path:
    curve = plot_curves(read_history(out / "history.jsonl"),
                        [("loss", "eval_loss"), ("accuracy", "eval_accuracy"), "lr", "grad_norm"], out / "loss.png",
                        title=f"reward {cfg.method.name}: loss and pairwise accuracy (batch, and held out at train.eval_steps)")
    rows = [[label, metrics.get(f"base_{key}"), metrics.get(key)] for key, label in (
        ("pairwise_accuracy", "pairwise accuracy (r+ > r-, ties 1/2)"),
        ("mean_margin", "mean margin r+ - r-"),
        ("log_loss", "log loss -log sigmoid(r+ - r-)"))]
    share = 100 * metrics["trainable_params"] / metrics["total_params"]
    lines = [
        f"# reward: {cfg.method.name} on {cfg.model.name}", "",
        f"{metrics['num_train_prompts']:,} training prompts -> {metrics['num_train_pairs']:,} pairs ({metrics['format']}; "
        f"{metrics['dropped_train_pairs']:,} dropped as longer than {cfg.model.max_length} tokens). Held out: "
        f"{metrics['num_test_prompts']:,} prompts, {metrics['num_test_pairs']:,} pairs, split by prompt.", "",
        "Held-out figures from llmkit's exact evaluator, over every held-out pair; 'start model' is the start "
        "model with its fresh, untrained head.", "",
        md_table(["", "start model", "after training"], rows), "",
        md_table(["figure", "value"], [
            ["calibration offset (mean raw reward of SFT demonstrations)",
             f"{fmt(metrics['calibration_offset'])} over {metrics['calibration_samples']} from {cfg.calibration.data}"],
            ["demonstration reward spread (std)", metrics["calibration_scale"]],
            ["mean calibrated reward by rank (best first)", ", ".join(fmt(v) for v in metrics["mean_reward_by_rank"])],
            ["trainable parameters", f"{metrics['trainable_params']:,} ({share:.3f}% of {metrics['total_params']:,})"],
            ["final training loss (mean over the run)", metrics["train_loss"]],
            *([["weights saved (train.keep_best)", f"step {metrics['best_step']}, held-out loss "
                f"{fmt(metrics['best_eval_loss'])}{', stopped early' if metrics.get('stopped_early') else ''}"]]
              if "best_step" in metrics else []),
            ["pairs / second", metrics["pairs_per_second"]],
            ["tokens / second", metrics["tokens_per_second"]],
            ["training time (s)", metrics["train_seconds"]],
            [f"peak memory (MB, {metrics['peak_memory_kind']})", metrics["peak_memory_mb"]],
        ]), "",
    ]
    if metrics.get("accuracy_by_rank_pair") and len(metrics["accuracy_by_rank_pair"]) > 1:
        lines += ["## Held-out accuracy by rank pair", "", "`1>2`: the best response against the second best, and so on.", "",
                  md_table(["pair", "pairwise accuracy"], [[f"`{k}`", v] for k, v in metrics["accuracy_by_rank_pair"].items()]), ""]
    if metrics.get("accuracy_by_task"):
        lines += ["## Held-out accuracy by task", "",
                  md_table(["task", "pairwise accuracy"], [[k, v] for k, v in metrics["accuracy_by_task"].items()]), ""]
    if curve:
        lines += ["## Training", "", "![training loss](loss.png)", ""]
    if examples:
        lines += ["## Held-out examples", "",
                  "Calibrated rewards (raw - offset): an SFT demonstration scores about 0. Responses are listed "
                  "best first when the data ranks them.", ""]
        table = []
        for ex in examples:
            for k, (resp, reward) in enumerate(zip(ex["responses"], ex["rewards"])):
                table.append([cell(ex["prompt"]) if k == 0 else "", k + 1, f"`{cell(resp)}`" if resp else "(empty)", reward])
        lines += [md_table(["prompt", "rank", "response", "reward"], table), ""]
    return save_report(out, lines)


# ----------------------------------------------------------------------------- in a pipeline's report


def summary_line(m: dict) -> str:
    top = (m.get("accuracy_by_rank_pair") or {}).get("1>2")
    return (f"pairwise accuracy {num(m.get('base_pairwise_accuracy'))} -> {num(m.get('pairwise_accuracy'))}"
            + (f"; best vs second-best {num(top)}" if top is not None else ""))


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    (stage,) = stages
    m = read_json(stage.out / "metrics.json")
    rows = [["pairwise accuracy (held-out pairs)", num(m.get("base_pairwise_accuracy")), num(m.get("pairwise_accuracy"))],
            ["mean margin chosen - rejected", num(m.get("base_mean_margin")), num(m.get("mean_margin"))],
            ["log loss", num(m.get("base_log_loss")), num(m.get("log_loss"))]]
    intro = (f"{m.get('method')} reward model on `{m.get('model')}`: {m.get('num_train_pairs', 0):,} training pairs from "
             f"{m.get('num_train_prompts', 0):,} ranked prompts, {m.get('num_test_pairs', 0):,} held-out pairs, "
             f"{m.get('train_seconds', 0):.0f} s.")
    lines = [intro, "", md_table(["", "untrained head", "trained"], rows), ""]
    return "Reward model", lines + image(stage.out / "loss.png", root, "reward model loss")


def headline(stages: list, pipeline) -> list[list[str]]:
    rows = []
    for s in stages:
        m = read_json(s.out / "metrics.json")
        rows.append([s.title, "held-out pairwise accuracy", num(m.get("base_pairwise_accuracy")), num(m.get("pairwise_accuracy"))])
        top = (m.get("accuracy_by_rank_pair") or {}).get("1>2")
        if top is not None:
            rows.append([s.title, "held-out accuracy, best vs second-best response (bundled: correct vs near miss)",
                         num((m.get("base_accuracy_by_rank_pair") or {}).get("1>2")), num(top)])
    return rows
