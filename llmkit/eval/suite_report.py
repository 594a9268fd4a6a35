"""report.md of an evaluation suite: the figures, how each was computed, per-row score
histograms, and the best and worst rows next to their references."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmkit.data.sft import prompt_text
from llmkit.report import (
    _plt,
    cell,
    image,
    md_table,
    num,
    pct,
    plot_histograms,
    read_json,
    save_report,
)

LABELS = {
    "bleu": ("BLEU", "sacrebleu corpus BLEU, 0-100"),
    "rouge1": ("ROUGE-1 F1", "rouge_score, unigram overlap"),
    "rouge2": ("ROUGE-2 F1", "rouge_score, bigram overlap"),
    "rougeL": ("ROUGE-L F1", "rouge_score, longest common subsequence"),
    "rougeLsum": ("ROUGE-Lsum F1", "rouge_score, LCS over newline-split sentences"),
    "rougeS": ("ROUGE-S F1", "skip-bigram co-occurrence (Lin 2004)"),
    "rougeSU": ("ROUGE-SU F1", "skip-bigrams plus unigrams (Lin 2004)"),
    "bertscore_precision": ("BERTScore P", "greedy cosine matching, prediction side"),
    "bertscore_recall": ("BERTScore R", "greedy cosine matching, reference side"),
    "bertscore_f1": ("BERTScore F1", "harmonic mean of P and R"),
    "exact_match": ("Exact match", "prediction equals a reference after stripping whitespace"),
    "reward": ("Mean reward", "reward model score of prompt + prediction, minus its calibration offset"),
    "perplexity": ("Perplexity", "exp of the mean token NLL (lower is better)"),
    "bits_per_token": ("Bits per token", "mean token NLL / ln 2"),
}
RANK_BY = ("bertscore_f1", "rougeL", "bleu", "exact_match")


def write_report(out: Path, cfg, metrics: dict, examples: list[dict], per_row: dict[str, list]) -> Path:
    lines = [f"# Evaluation: {cfg.name}", ""]
    src = [f"model `{cfg.model.name}`" if cfg.model.name else None,
           f"{metrics['num_examples']} examples from `{metrics['data']}`" if metrics.get("data") else None,
           f"predictions from `{cfg.predictions.path}`" if cfg.predictions.path else None,
           f"perplexity texts `{metrics.get('perplexity_texts')}`" if metrics.get("perplexity_texts") else None]
    lines += ["; ".join(s for s in src if s) + ".", ""]
    rows = [[LABELS[k][0], metrics[k], LABELS[k][1]] for k in LABELS if metrics.get(k) is not None]
    lines += [md_table(["metric", "value", "what it is"], rows), ""]

    d = metrics.get("details", {})
    notes = []
    if "bleu" in d:
        b = d["bleu"]
        notes.append(f"BLEU: sacrebleu `{b['signature']}`; n-gram precisions "
                     f"{', '.join(f'{p:.1f}' for p in b['precisions'])}; brevity penalty {b['brevity_penalty']:.3f} "
                     f"({b['sys_len']} prediction / {b['ref_len']} reference tokens).")
    if "rouge" in d:
        notes.append(f"ROUGE: Google's rouge_score tokenizer (lowercase, letters and digits only), stemmer "
                     f"{'on' if cfg.rouge.use_stemmer else 'off'}; rougeS/rougeSU skip gap "
                     f"{cfg.rouge.skip_gap if cfg.rouge.skip_gap is not None else 'unlimited'}; mean over rows of the "
                     f"best-F reference.")
    if "bertscore" in d:
        b = d["bertscore"]
        notes.append(f"BERTScore: encoder `{b['model']}`, layer {b['num_layers']}, idf {'on' if b['idf'] else 'off'}, "
                     f"{'rescaled with a baseline' if b['rescaled'] else 'raw (no baseline rescaling)'}.")
    if "reward" in d:
        notes.append(f"Reward: model `{d['reward']['model']}`, calibration offset {d['reward']['offset']:.3f} subtracted "
                     "(0 = the reward of an average demonstration).")
    if "perplexity" in d:
        p = d["perplexity"]
        notes.append(f"Perplexity: {p['num_tokens']:,} tokens scored, window {p['max_length']} tokens, stride {p['stride']}.")
    if cfg.model.name and not cfg.predictions.path and examples:
        g = cfg.generate
        notes.append(f"Generation: {'greedy' if g.temperature == 0 else f'sampling at temperature {g.temperature}'}, "
                     f"up to {g.max_new_tokens} new tokens, batches of {g.batch_size}.")
        f = cfg.fewshot
        pool = f"the prompt's own task family (column `{f.task_column}`)" if f.same_task else "any task"
        notes.append(f"Prompting: {f.k}-shot: {f.k} demonstrations from the `{f.split}` split, {pool}, seed {f.seed}, "
                     f"as earlier user/assistant turns." if f.k else "Prompting: zero-shot (each prompt as it is).")
    timing = [f"{k.replace('_seconds', '')} {metrics[k]:.1f} s" for k in ("generate_seconds", "score_seconds", "perplexity_seconds") if k in metrics]
    if timing:
        notes.append("Time: " + ", ".join(timing) + ".")
    lines += [f"- {n}" for n in notes] + [""]

    hist = {LABELS.get(k, (k,))[0]: v for k, v in per_row.items() if k in ("bleu", "rougeL", "bertscore_f1")}
    if plot_histograms(hist, out / "scores.png", title="Per-row scores"):
        lines += ["## Per-row scores", "", "![per-row score histograms](scores.png)", ""]

    key = next((k for k in RANK_BY if k in per_row), None)
    if key and examples:
        order = sorted(range(len(examples)), key=lambda i: per_row[key][i])
        n = min(cfg.output.examples, len(examples) // 2 or 1)
        cols = [k for k in ("bleu", "rougeL", "bertscore_f1", "exact_match", "reward") if k in per_row]
        for title, idx in ((f"Best rows by {LABELS[key][0]}", order[::-1][:n]), (f"Worst rows by {LABELS[key][0]}", order[:n])):
            table = [[cell(prompt_text(examples[i].get("query", examples[i]["prompt"])), 90), cell(" / ".join(examples[i]["references"]), 90), cell(examples[i]["prediction"], 90)]
                     + [per_row[c][i] for c in cols] for i in idx]
            lines += [f"## {title}", "", md_table(["prompt", "reference", "prediction", *cols], table), ""]

    cmd = "llmkit " + " ".join(sys.argv[1:]) if sys.argv and "llmkit" in sys.argv[0] else None
    lines += ["## Files", "", "`predictions.jsonl` (every row with its scores), `metrics.json`, `config.yaml`."
              + (f" Reproduce: `{cmd}`." if cmd else ""), ""]
    return save_report(out, lines)


# ----------------------------------------------------------------------------- in a pipeline's report

EVAL_ROWS = [  # key, in the progress line (None: not there), in the report's table
    ("exact_match", "exact match", "exact match"), ("bleu", "BLEU", "BLEU"), ("rougeL", "ROUGE-L F1", "ROUGE-L F1"),
    ("rouge2", None, "ROUGE-2 F1"), ("rougeSU", None, "ROUGE-SU F1"), ("bertscore_f1", "BERTScore F1", "BERTScore F1"),
    ("reward", "mean reward", "mean reward (reward model)"),
    ("perplexity", "perplexity", "perplexity, held-out text (lower is better)"),
]


def _value(key: str, v) -> str:
    return pct(v) if key == "exact_match" else num(v, 1 if key == "bleu" else 3)


def summary_line(m: dict) -> str:
    return ", ".join(f"{short} {_value(k, m[k])}" for k, short, _ in EVAL_ROWS if k in m and short)


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    """Every evaluation stage in one table (a column per stage, named by its title), a plot and
    sample generations for the same prompts."""
    ms = [read_json(s.out / "metrics.json") for s in stages]
    labels = [s.title for s in stages]
    rows = [[label] + [_value(key, m.get(key)) for m in ms] for key, _, label in EVAL_ROWS if any(key in m for m in ms)]
    lines = [f"Greedy answers to {ms[0].get('num_examples')} held-out prompts (`{ms[0].get('data')}`) from each model, "
             "scored against the references; perplexity on held-out text the models never trained on.", "",
             md_table(["metric", *labels], rows), ""]
    if _plot_eval(ms, labels, root / "eval.png"):
        lines += image(root / "eval.png", root, "base vs SFT vs PPO")
    lines += _samples(stages, labels)
    return "Evaluation: " + " vs ".join(labels), lines


def _samples(stages: list, labels: list[str]) -> list[str]:
    preds = [[json.loads(x) for x in (s.out / "predictions.jsonl").read_text().splitlines()]
             if (s.out / "predictions.jsonl").is_file() else [] for s in stages]
    if not all(preds) or len({len(p) for p in preds}) != 1:
        return []
    n = len(preds[0])
    idx = sorted({round(i * (n - 1) / 7) for i in range(8)}) if n > 8 else list(range(n))
    table = []
    for i in idx:
        answers = [cell(p[i]["prediction"], 60) + (" ✓" if p[i].get("scores", {}).get("exact_match") == 1.0 else "")
                   for p in preds]
        table.append([cell(preds[0][i]["prompt"], 70), cell(" / ".join(preds[0][i]["references"]), 40), *answers])
    return ["Sample generations, the same prompts for every model (✓: exact match):", "",
            md_table(["prompt", "reference", *labels], table), ""]


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


def headline(stages: list, pipeline) -> list[list[str]]:
    if len(stages) < 2:
        return []
    ms = [read_json(s.out / "metrics.json") for s in stages]
    labels = [s.title for s in stages]
    rows = []
    for key, label in (("exact_match", "held-out exact match"), ("reward", "held-out mean reward"),
                       ("bertscore_f1", "held-out BERTScore F1")):
        if all(key in m for m in ms):
            vals = [pct(m[key]) if key == "exact_match" else num(m[key]) for m in ms]
            rows.append(["evaluation", f"{label}: {labels[0]} -> {' / '.join(labels[1:])}", vals[0], " / ".join(vals[1:])])
    return rows
