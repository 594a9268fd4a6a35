"""report.md of an evaluation suite: the figures, how each was computed, per-row score
histograms, and the best and worst rows next to their references."""

from __future__ import annotations

import sys
from pathlib import Path

from llmkit.data.sft import prompt_text
from llmkit.report import cell, md_table, plot_histograms, save_report

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
