"""The report of a pipeline run: `OUTPUT/report.md` and its one-file HTML twin `report.html`.

Built from what each stage wrote (metrics.json, stats.json, predictions.jsonl, compare.json and
the stage's own plots), in stage order, one section per stage kind: Self-Instruct, SFT, reward
model, PPO, evaluation (every eval stage in one table, with sample generations of each model for
the same prompts), classification (every classify stage and the comparison plot). A results table
at the top gives each stage's key number before and after; `summary(stage)` is the same number
as the pipeline's progress line shows it.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from llmkit.pipeline import DONE_FILE
from llmkit.report import _plt, cell, md_table, save_report

EVAL_ROWS = [  # key, in the progress line (None: not there), in the report's table
    ("exact_match", "exact match", "exact match"), ("bleu", "BLEU", "BLEU"), ("rougeL", "ROUGE-L F1", "ROUGE-L F1"),
    ("rouge2", None, "ROUGE-2 F1"), ("rougeSU", None, "ROUGE-SU F1"), ("bertscore_f1", "BERTScore F1", "BERTScore F1"),
    ("reward", "mean reward", "mean reward (reward model)"),
    ("perplexity", "perplexity", "perplexity, held-out text (lower is better)"),
]


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def metrics(stage) -> dict:
    data = _json(stage.out / DONE_FILE[stage.run])
    return {"runs": data} if isinstance(data, list) else data


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def num(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _eval_value(key: str, v) -> str:
    return pct(v) if key == "exact_match" else num(v, 1 if key == "bleu" else 3)


def summary(stage) -> str:
    """The stage's key figures in one line."""
    m = metrics(stage)
    if stage.kind == "self_instruct":
        b, e = m["bootstrap"], m["export"]
        return (f"kept {b['kept']} of {b['candidates']} generated instructions, "
                f"{e['examples']} finetuning examples ({e['machine_examples']} machine-made)")
    if stage.kind == "sft":
        loss = f"held-out loss {num(m.get('base_eval_loss'))} -> {num(m.get('eval_loss'))}"
        if m.get("eval_exact_match") is None:
            return loss
        return f"held-out exact match {pct(m.get('base_eval_exact_match'))} -> {pct(m.get('eval_exact_match'))}, {loss}"
    if stage.kind == "reward":
        top = (m.get("accuracy_by_rank_pair") or {}).get("1>2")
        return (f"pairwise accuracy {num(m.get('base_pairwise_accuracy'))} -> {num(m.get('pairwise_accuracy'))}"
                + (f"; best vs second-best {num(top)}" if top is not None else ""))
    if stage.kind == "ppo":
        line = (f"rollout reward {num(m.get('reward_mean_first'))} -> {num(m.get('reward_mean_last'))}, "
                f"KL max {num(m.get('kl_max'), 2)}")
        if m.get("eval_reward") is not None:
            line += f"; held-out reward {num(m.get('before_eval_reward'))} -> {num(m.get('eval_reward'))}"
        return line
    if stage.kind == "eval":
        parts = [f"{short} {_eval_value(k, m[k])}" for k, short, _ in EVAL_ROWS if k in m and short]
        return ", ".join(parts)
    if stage.kind == "classify":
        return f"accuracy {num(m.get('accuracy'))}, macro-F1 {num(m.get('macro_f1'))}, {m.get('trainable_params', 0):,} trainable params"
    if stage.kind == "compare":
        return f"{len(m['runs'])} methods compared ({stage.out / 'compare.md'})"
    return str(stage.out)


# ----------------------------------------------------------------------------- sections


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _image(path: Path, root: Path, alt: str) -> list[str]:
    return [f"![{alt}]({_rel(path, root)})", ""] if path.is_file() else []


def _table_and_plot(intro: str, columns: list[str], rows: list[list], image: Path, root: Path, alt: str) -> list[str]:
    return [intro, "", md_table(["", *columns], rows), ""] + _image(image, root, alt)


def _self_instruct(stage, root: Path) -> list[str]:
    m = metrics(stage)
    b, e = m["bootstrap"], m["export"]
    rejected = ", ".join(f"{k} {v}" for k, v in b["rejected_by"].items()) or "none"
    rows = [["seed tasks", m["num_seeds"]], ["target machine instructions", m["target"]],
            ["prompts to the model", b["prompts"]], ["candidate instructions", b["candidates"]],
            ["kept (passed the filters)", b["kept"]], ["rejected", f"{b['rejected']} ({rejected})"],
            ["tasks with instances", e["machine_tasks"]], ["finetuning examples (seeds + machine)", e["examples"]]]
    kept = [json.loads(x) for x in (stage.out / "instructions.jsonl").read_text().splitlines()[:5]] \
        if (stage.out / "instructions.jsonl").is_file() else []
    lines = [f"Model `{m['model']}` grew the seed set: {summary(stage)}.", "", md_table(["", "count"], rows), ""]
    if kept:
        lines += ["First instructions kept:", ""] + [f"- {cell(k['instruction'], 140)}" for k in kept] + [""]
    return lines + _image(stage.out / "kept.png", root, "instructions kept per round")


def _sft(stage, root: Path) -> list[str]:
    m = metrics(stage)
    rows = [["held-out exact match", pct(m.get("base_eval_exact_match")), pct(m.get("eval_exact_match"))],
            ["held-out loss (answer tokens)", num(m.get("base_eval_loss")), num(m.get("eval_loss"))],
            ["held-out perplexity", num(m.get("base_eval_perplexity"), 2), num(m.get("eval_perplexity"), 2)]]
    rows = [r for r in rows if r[2] != "n/a"]  # exact match is left to the evaluation stages when eval.num_generate=0
    intro = (f"{m.get('method')} on `{m.get('model')}`: {m.get('num_train', 0):,} training examples, "
             f"{m.get('trainable_params', 0):,} of {m.get('total_params', 0):,} parameters trained, {m.get('train_seconds', 0):.0f} s.")
    return _table_and_plot(intro, ["base model", "after SFT"], rows, stage.out / "loss.png", root, "SFT loss")


def _reward(stage, root: Path) -> list[str]:
    m = metrics(stage)
    rows = [["pairwise accuracy (held-out pairs)", num(m.get("base_pairwise_accuracy")), num(m.get("pairwise_accuracy"))],
            ["mean margin chosen - rejected", num(m.get("base_mean_margin")), num(m.get("mean_margin"))],
            ["log loss", num(m.get("base_log_loss")), num(m.get("log_loss"))]]
    intro = (f"{m.get('method')} reward model on `{m.get('model')}`: {m.get('num_train_pairs', 0):,} training pairs from "
             f"{m.get('num_train_prompts', 0):,} ranked prompts, {m.get('num_test_pairs', 0):,} held-out pairs, "
             f"{m.get('train_seconds', 0):.0f} s.")
    return _table_and_plot(intro, ["untrained head", "trained"], rows, stage.out / "loss.png", root, "reward model loss")


def _ppo(stage, root: Path) -> list[str]:
    m = metrics(stage)
    rows = [["mean rollout reward (first / last fifth of updates)", num(m.get("reward_mean_first")), num(m.get("reward_mean_last"))],
            ["held-out greedy reward", num(m.get("before_eval_reward")), num(m.get("eval_reward"))],
            ["held-out exact match", pct(m.get("before_eval_exact_match")), pct(m.get("eval_exact_match"))],
            ["KL to the SFT model (last fifth; max)", "", f"{num(m.get('kl_last'))}; {num(m.get('kl_max'))}"]]
    rows = [r for r in rows if r[2] != "n/a"]  # held-out figures are left to the evaluation stages when eval.num_prompts=0
    intro = f"PPO from `{m.get('policy_start')}` against `{m.get('reward')}`: {m.get('updates')} updates, {m.get('train_seconds', 0):.0f} s."
    return _table_and_plot(intro, ["SFT model (start)", "after PPO"], rows, stage.out / "reward_kl.png", root, "PPO reward and KL")


def _eval_label(stage, pipeline) -> str:
    """An evaluation stage is named by its title ("base, zero-shot", "SFT", ...)."""
    return stage.title


def _eval(stages, pipeline, root: Path) -> list[str]:
    ms = [metrics(s) for s in stages]
    labels = [_eval_label(s, pipeline) for s in stages]
    rows = []
    for key, _, label in EVAL_ROWS:
        if any(key in m for m in ms):
            rows.append([label] + [_eval_value(key, m.get(key)) for m in ms])
    first = ms[0]
    lines = [f"Greedy answers to {first.get('num_examples')} held-out prompts (`{first.get('data')}`) from each model, "
             "scored against the references; perplexity on held-out text the models never trained on.", "",
             md_table(["metric", *labels], rows), ""]
    path = root / "eval.png"
    if _plot_eval(ms, labels, path):
        lines += _image(path, root, "base vs SFT vs PPO")
    preds = [[json.loads(x) for x in (s.out / "predictions.jsonl").read_text().splitlines()]
             if (s.out / "predictions.jsonl").is_file() else [] for s in stages]
    if all(preds) and len({len(p) for p in preds}) == 1:
        n = len(preds[0])
        idx = sorted({round(i * (n - 1) / 7) for i in range(8)}) if n > 8 else list(range(n))
        table = []
        for i in idx:
            ans = []
            for p in preds:
                ok = p[i].get("scores", {}).get("exact_match")
                ans.append(cell(p[i]["prediction"], 60) + (" ✓" if ok == 1.0 else ""))
            table.append([cell(preds[0][i]["prompt"], 70), cell(" / ".join(preds[0][i]["references"]), 40), *ans])
        lines += ["Sample generations, the same prompts for every model (✓: exact match):", "",
                  md_table(["prompt", "reference", *labels], table), ""]
    return lines


def _plot_eval(ms: list[dict], labels: list[str], path: Path) -> Path | None:
    quality = [(k, lab) for k, lab in (("exact_match", "exact match"), ("bleu", "BLEU / 100"), ("rougeL", "ROUGE-L"),
                                       ("bertscore_f1", "BERTScore F1")) if all(k in m for m in ms)]
    extra = [(k, lab) for k, lab in (("reward", "mean reward"), ("perplexity", "perplexity (lower is better)"))
             if any(k in m for m in ms)]  # a model may skip one (perplexity does not depend on the prompting)
    if not quality and not extra:
        return None
    plt = _plt()
    widths = ([3] if quality else []) + [1.3] * len(extra)
    fig, axes = plt.subplots(1, len(widths), figsize=(3.2 * sum(widths) / 1.3 * 0.75 + 1, 3.6), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    axes = list(axes[0])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if quality:
        ax = axes.pop(0)
        w = 0.8 / len(ms)
        for j, (m, lab) in enumerate(zip(ms, labels)):
            ys = [m[k] / (100 if k == "bleu" else 1) for k, _ in quality]
            ax.bar([i + j * w for i in range(len(quality))], ys, w, label=lab, color=colors[j % len(colors)])
        ax.set_xticks([i + w * (len(ms) - 1) / 2 for i in range(len(quality))], [lab for _, lab in quality])
        ax.set_ylim(0, 1)
        ax.set_title("held-out answers")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for (k, lab), ax in zip(extra, axes):
        have = [j for j, m in enumerate(ms) if k in m]
        ax.bar(range(len(have)), [ms[j][k] for j in have], color=[colors[j % len(colors)] for j in have])
        ax.set_xticks(range(len(have)), [labels[j].split(" (")[0] for j in have], rotation=20, fontsize=8)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(lab, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(" vs ".join(labels))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _classify(stages, compare_stage, root: Path) -> list[str]:
    rows = []
    for s in stages:
        m = metrics(s)
        share = f"{100 * m['trainable_params'] / m['total_params']:.2f}%" if m.get("total_params") else ""
        rows.append([s.title, num(m.get("accuracy")), num(m.get("macro_f1")), f"{m.get('trainable_params', 0):,}", share,
                     f"{m.get('train_seconds', 0):.0f}", f"{m.get('peak_memory_mb', 0):,.0f}"])
    model = metrics(stages[0]).get("model") if stages else None
    lines = [f"Every method on the same encoder{f' (`{model}`)' if model else ''} and the same test split.", "",
             md_table(["method", "test accuracy", "macro F1", "trainable params", "share", "train time (s)", "peak RSS (MB)"], rows), ""]
    if compare_stage is not None:
        lines += _image(compare_stage.out / "compare.png", root, "accuracy against trainable parameters and training time")
    return lines


# ----------------------------------------------------------------------------- headline


def headline_rows(pipeline) -> list[list[str]]:
    """[stage, measure, before, after] for the results table (and the quickstart's closing lines)."""
    rows = []
    by_kind: dict[str, list] = {}
    for s in pipeline.stages:
        by_kind.setdefault(s.kind, []).append(s)
    for s in by_kind.get("self_instruct", []):
        m = metrics(s)
        rows.append([s.title, "machine instructions kept", "", f"{m['bootstrap']['kept']} (of {m['bootstrap']['candidates']})"])
    for s in by_kind.get("sft", []):
        m = metrics(s)
        if m.get("eval_exact_match") is not None:
            rows.append([s.title, "held-out exact match, base -> SFT", pct(m.get("base_eval_exact_match")), pct(m.get("eval_exact_match"))])
        rows.append([s.title, "held-out loss on the answer tokens, base -> SFT", num(m.get("base_eval_loss")), num(m.get("eval_loss"))])
    for s in by_kind.get("reward", []):
        m = metrics(s)
        rows.append([s.title, "held-out pairwise accuracy", num(m.get("base_pairwise_accuracy")), num(m.get("pairwise_accuracy"))])
        top = (m.get("accuracy_by_rank_pair") or {}).get("1>2")
        if top is not None:
            rows.append([s.title, "held-out accuracy, best vs second-best response (bundled: correct vs near miss)",
                         num((m.get("base_accuracy_by_rank_pair") or {}).get("1>2")), num(top)])
    for s in by_kind.get("ppo", []):
        m = metrics(s)
        # (the rollout reward's first/last-fifth comparison stays in the PPO section: with few updates it mostly
        # says which tasks each batch drew; the held-out comparison is the evaluation's)
        rows.append([s.title, "KL to the SFT model per response, nats (last fifth; max)", "",
                     f"{num(m.get('kl_last'))}; {num(m.get('kl_max'))}"])
        if m.get("eval_reward") is not None:
            rows.append([s.title, "held-out greedy reward, SFT -> PPO", num(m.get("before_eval_reward")), num(m.get("eval_reward"))])
    evals = by_kind.get("eval", [])
    if len(evals) >= 2:
        ms = [metrics(s) for s in evals]
        labels = [_eval_label(s, pipeline) for s in evals]
        for key, label in (("exact_match", "held-out exact match"), ("reward", "held-out mean reward"),
                           ("bertscore_f1", "held-out BERTScore F1")):
            if all(key in m for m in ms):
                vals = [pct(m[key]) if key == "exact_match" else num(m[key]) for m in ms]
                rows.append(["evaluation", f"{label}: {labels[0]} -> {' / '.join(labels[1:])}", vals[0],
                             " / ".join(vals[1:])])
    cls = by_kind.get("classify", [])
    if cls:
        scored = [(metrics(s).get("accuracy") or 0.0, s.title) for s in cls]
        lo, hi = min(scored, key=lambda x: x[0]), max(scored, key=lambda x: x[0])
        rows.append(["classification", "test accuracy, lowest -> highest method", f"{num(lo[0])} ({lo[1]})", f"{num(hi[0])} ({hi[1]})"])
    return rows


def _heading(kind_label: str, title: str) -> str:
    return kind_label if title.lower() == kind_label.lower() else f"{kind_label}: {title}"


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
    times = [[s.title, s.kind, f"{record['stages'].get(s.name, {}).get('seconds', 0):.0f}",
              _rel(s.out / ("compare.md" if s.kind == "compare" else "report.md"), root)] for s in pipeline.stages]

    done_evals = False
    done_classify = False
    n = 0
    for s in pipeline.stages:
        section = None
        if s.kind == "self_instruct":
            section = (_heading("Self-Instruct", s.title), _self_instruct(s, root))
        elif s.kind == "sft":
            section = (_heading("Supervised finetuning", s.title), _sft(s, root))
        elif s.kind == "reward":
            section = (_heading("Reward model", s.title), _reward(s, root))
        elif s.kind == "ppo":
            section = (_heading("PPO", s.title), _ppo(s, root))
        elif s.kind == "eval" and not done_evals:
            done_evals = True
            section = ("Evaluation: " + " vs ".join(_eval_label(e, pipeline) for e in pipeline.stages if e.kind == "eval"),
                       _eval([e for e in pipeline.stages if e.kind == "eval"], pipeline, root))
        elif s.kind in ("classify", "compare") and not done_classify:
            done_classify = True
            section = ("Classification: every method side by side",
                       _classify([c for c in pipeline.stages if c.kind == "classify"],
                                 next((c for c in pipeline.stages if c.kind == "compare"), None), root))
        if section:
            n += 1
            lines += [f"## {n}. {section[0]}", "", *section[1]]
    lines += ["## Stages", "", "Each stage is a normal llmkit run with its own report; its command is the first line "
              "of its log (`<stage>.log` here).", "",
              md_table(["stage", "kind", "time (s)", "its report"], times), ""]
    return save_report(root, lines)
