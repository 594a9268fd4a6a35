"""SFT benchmark: every method on the same model and data, llmkit's training step against a plain
transformers + PEFT loop on the same batches, and packing against padded batches.

    .venv/bin/python benchmarks/sft_throughput.py [--model pico-llama] [--steps 40] [--repeats 3]

Writes benchmarks/results/sft_<device>.md. Each llmkit run is a normal `llmkit train` in its own
process (so peak memory is its own); tokens are non-padding tokens the optimizer saw. Figures are
medians over --repeats runs; the ratio compares runs made in the same sitting on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["full", "last_layers", "lora", "qlora", "adapter", "prefix", "prompt"]


def llmkit_run(method: str, model: str, steps: int, out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "llmkit", "train", str(ROOT / f"recipes/sft/{method}.yaml"), f"model={model}",
           f"train.max_steps={steps}", "train.batch_size=16", "train.logging_steps=10", "eval.num_generate=0",
           "eval.before=false", "data.max_test_samples=64", f"output_dir={out}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads((out / "metrics.json").read_text())


def plain_loop(model_name: str, steps: int) -> float:
    """tokens/s of a hand-written transformers + PEFT LoRA loop over the batches llmkit trains on."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, get_scheduler

    from llmkit.config import ModelConfig
    from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE, SFTDataConfig, prepare, tokenize
    from llmkit.models.loading import load_tokenizer, resolve_model

    torch.manual_seed(42)
    path = resolve_model(model_name)
    tok = load_tokenizer(ModelConfig(name=model_name), path)
    tok.chat_template = tok.chat_template or DEFAULT_CHAT_TEMPLATE
    data = prepare(SFTDataConfig(max_train_samples=16 * steps))
    examples = [tokenize(r, tok, 256) for r in data.train]
    model = AutoModelForCausalLM.from_pretrained(path)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=steps)
    model.train()
    tokens, clock = 0, []
    for s in range(steps):
        chunk = examples[s * 16:(s + 1) * 16]
        width = max(len(e["input_ids"]) for e in chunk)
        ids = torch.full((16, width), tok.pad_token_id)
        labels = torch.full((16, width), -100)
        mask = torch.zeros((16, width), dtype=torch.long)
        for j, e in enumerate(chunk):
            n = len(e["input_ids"])
            ids[j, :n], labels[j, :n], mask[j, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        tokens += int(mask.sum())
        clock.append((time.perf_counter(), tokens))
    (t0, n0), (t1, n1) = clock[5], clock[-1]  # same steady-state window as llmkit's figure
    return (n1 - n0) / (t1 - t0)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU only, {os.cpu_count()} cores ({cpu})"
    return f"{dev}; torch {torch.__version__}; Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pico-llama")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--only-step", action="store_true", help="only the llmkit vs plain-loop comparison")
    args = ap.parse_args()
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="llmkit-bench-"))
    rows = []
    for method in ([] if args.only_step else args.methods.split(",")):
        m = llmkit_run(method, args.model, args.steps, tmp / method)
        rows.append([method, m["trainable_params"], m["tokens_per_second"], m["peak_memory_mb"], m["eval_loss"]])
        print(method, rows[-1][1:], flush=True)

    ratios, ours, plain, trl, trl_ratios = [], [], [], [], []
    for r in range(args.repeats):  # alternate, so drift in machine load hits both sides
        a = llmkit_run("lora", args.model, args.steps, tmp / f"step-{r}")["steady_tokens_per_second"]
        b = plain_loop(args.model, args.steps)
        c = llmkit_run("lora", args.model, args.steps, tmp / f"trl-{r}", "train.token_metrics=true")["steady_tokens_per_second"]
        ours.append(a)
        plain.append(b)
        trl.append(c)
        ratios.append(a / b)
        trl_ratios.append(c / b)
        print(f"repeat {r}: llmkit {a:.0f} tok/s, plain loop {b:.0f} tok/s, ratio {a / b:.3f}; "
              f"with token metrics {c:.0f} ({c / b:.3f})", flush=True)

    packed, padded = [], []
    for r in range(args.repeats):
        padded.append(llmkit_run("lora", args.model, args.steps, tmp / f"pad-{r}")["tokens_per_second"])
        packed.append(llmkit_run("lora", args.model, args.steps, tmp / f"pack-{r}", "train.packing=true")["tokens_per_second"])

    from llmkit.report import md_table

    device = "gpu" if torch.cuda.is_available() else "cpu"
    text = "\n".join([
        f"# SFT benchmark ({device})", "",
        f"Machine: {machine()}. Model `{args.model}`, bundled instruction data, global batch 16, "
        f"{args.steps} optimizer steps per run, fp32. Command: `python benchmarks/sft_throughput.py --model {args.model} "
        f"--steps {args.steps} --repeats {args.repeats}`.", "",
        "## Methods", "",
        md_table(["method", "trainable params", "tokens/s", "peak memory (MB, RSS)", f"held-out loss after {args.steps} steps"], rows), "",
        "## llmkit SFT step vs a plain transformers + PEFT loop (LoRA, same batches)", "",
        md_table(["", "median tokens/s", "runs"], [["llmkit (default)", statistics.median(ours), ", ".join(f"{x:.0f}" for x in ours)],
                                                   ["llmkit, train.token_metrics=true (TRL's loss path)", statistics.median(trl), ", ".join(f"{x:.0f}" for x in trl)],
                                                   ["plain loop", statistics.median(plain), ", ".join(f"{x:.0f}" for x in plain)]]), "",
        f"Median ratio llmkit / plain: **{statistics.median(ratios):.3f}** (per repeat: {', '.join(f'{x:.3f}' for x in ratios)}); "
        f"with token metrics: {statistics.median(trl_ratios):.3f}. "
        "Both are steady-state figures: non-padding tokens per second from the end of step 5 to the last step, so "
        "start-up (model loading, optimizer creation, first-step allocation) and the final checkpoint are left out; "
        "llmkit's includes everything its Trainer does per step (logging, scheduler, clipping, token counting). "
        "llmkit's default trainer computes the loss as the model does; TRL's own SFTTrainer loss, which adds per-token "
        "entropy and accuracy for its logs (`train.token_metrics=true`), is measured alongside.", "",
        "## Packing (padding-free) vs padded batches (LoRA)", "",
        md_table(["", "median tokens/s"], [["padded", statistics.median(padded)], ["packed, padding-free", statistics.median(packed)]]), "",
        f"Ratio packed / padded: **{statistics.median(packed) / statistics.median(padded):.3f}**.", "",
    ])
    out = ROOT / "benchmarks" / "results" / f"sft_{device}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
