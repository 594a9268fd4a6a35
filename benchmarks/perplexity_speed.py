"""Perplexity throughput: llmkit.eval.perplexity against a bare torch.no_grad() loop over the same
batches (same windows, same padding), in the same process, alternating, several repeats.

    .venv/bin/python benchmarks/perplexity_speed.py [--model pico-llama] [--repeats 5]

The texts are eval/data/texts.jsonl joined into long documents, so the sliding window is
exercised (window 256, stride 128). llmkit's time includes its tokenisation and window building;
the bare loop gets its batches ready-made. Writes benchmarks/results/perplexity_<device>.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from sft_throughput import machine  # noqa: E402


def bare_loop(model, batches) -> tuple[float, int]:
    """Sum of target NLLs over ready-made (ids, mask, labels) batches: forward + cross-entropy only."""
    nll, n = 0.0, 0
    with torch.no_grad():
        for ids, mask, labels in batches:
            logits = model(input_ids=ids, attention_mask=mask).logits
            nll += torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                                     ignore_index=-100, reduction="sum").item()
            n += int((labels[:, 1:] != -100).sum())
    return nll, n


def make_batches(tok, texts, max_length, stride, batch_size):
    from llmkit.eval.perplexity import windows

    work = sorted((w for t in texts for w in windows(tok(t)["input_ids"], max_length, stride)), key=lambda w: len(w[0]))
    batches = []
    for i in range(0, len(work), batch_size):
        chunk = work[i:i + batch_size]
        width = max(len(w) for w, _ in chunk)
        ids = torch.full((len(chunk), width), tok.pad_token_id)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for j, (w, k) in enumerate(chunk):
            ids[j, :len(w)], mask[j, :len(w)] = torch.tensor(w), 1
            labels[j, len(w) - k:len(w)] = torch.tensor(w[len(w) - k:])
        batches.append((ids, mask, labels))
    return batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pico-llama")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    from llmkit.eval.perplexity import perplexity
    from llmkit.models.trained import load_causal

    model, tok = load_causal(args.model)
    rows = [json.loads(x)["text"] for x in (ROOT / "eval/data/texts.jsonl").read_text().splitlines()]
    texts = [" ".join(rows[i:i + 20]) for i in range(0, len(rows), 20)]  # 10 long documents
    batches = make_batches(tok, texts, args.max_length, args.stride, args.batch_size)
    ours, bare, ratios = [], [], []
    ppl = perplexity(model, tok, texts, max_length=args.max_length, stride=args.stride, batch_size=args.batch_size,
                     progress=False)  # warm-up, and the reference figure
    nll, n = bare_loop(model, batches)
    assert n == ppl["num_tokens"] and abs(nll / n - ppl["nll"]) < 1e-4, (nll / n, ppl)
    for _ in range(args.repeats):
        t = time.perf_counter()
        perplexity(model, tok, texts, max_length=args.max_length, stride=args.stride, batch_size=args.batch_size, progress=False)
        a = n / (time.perf_counter() - t)
        t = time.perf_counter()
        bare_loop(model, batches)
        b = n / (time.perf_counter() - t)
        ours.append(a)
        bare.append(b)
        ratios.append(a / b)
        print(f"llmkit {a:,.0f} tok/s, bare loop {b:,.0f} tok/s, ratio {a / b:.3f}", flush=True)

    from llmkit.report import md_table

    device = "gpu" if torch.cuda.is_available() else "cpu"
    text = "\n".join([
        f"# Perplexity throughput ({device})", "",
        f"Machine: {machine()}. Model `{args.model}`, {len(texts)} documents ({n:,} scored tokens), window "
        f"{args.max_length}, stride {args.stride}, batch {args.batch_size}, fp32, {torch.get_num_threads()} threads. "
        f"Command: `python benchmarks/perplexity_speed.py --model {args.model} --repeats {args.repeats}`.", "",
        md_table(["", "median scored tokens/s", "runs"],
                 [["llmkit.eval.perplexity", statistics.median(ours), ", ".join(f"{x:,.0f}" for x in ours)],
                  ["bare torch.no_grad() loop", statistics.median(bare), ", ".join(f"{x:,.0f}" for x in bare)]]), "",
        f"Median ratio llmkit / bare: **{statistics.median(ratios):.3f}** (per repeat: {', '.join(f'{x:.3f}' for x in ratios)}); "
        f"both give perplexity {ppl['perplexity']:.4f}. llmkit's time includes tokenising the texts and building the "
        "windows; the bare loop's batches are ready-made.", "",
    ])
    out = ROOT / "benchmarks" / "results" / f"perplexity_{device}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
