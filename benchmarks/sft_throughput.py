"""SFT benchmark: every method on the same model and data, llmkit's training step against a plain
transformers + PEFT loop on the same batches, and packing against padded batches.

    .venv/bin/python benchmarks/sft_throughput.py [--model smollm2] [--steps 20] [--step-steps 20] [--repeats 3] [--parts methods,step,packing]

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


def llmkit_run(method: str, model: str, steps: int, out: Path, *extra: str, generate: int = 0) -> dict:
    cmd = [sys.executable, "-m", "llmkit", "train", str(ROOT / f"recipes/sft/{method}.yaml"), f"model={model}",
           f"train.max_steps={steps}", "train.batch_size=16", "train.logging_steps=10", f"eval.num_generate={generate}",
           "eval.before=false", f"data.max_test_samples={max(64, generate)}", f"output_dir={out}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads((out / "metrics.json").read_text())


def plain_loop(model_name: str, steps: int, micro: int = 4, accumulation: int = 4) -> tuple[float, float]:
    """tokens/s of a hand-written transformers + PEFT LoRA loop over the batches llmkit trains on:
    the same data, tokenisation, collator, micro batches and shuffled order (taken from an
    SFTTrainer's own dataloader, built with llmkit's settings: micro batches of 4, 4 accumulated per
    optimizer step), so only the training step differs. Its loss is the cross-entropy over every
    position's logits, as one writes it by hand. -> (steady-state tokens/s, peak RSS in MB while training)."""
    import torch
    from accelerate.utils import set_seed
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, get_scheduler
    from trl import SFTConfig, SFTTrainer

    from llmkit.config import ModelConfig
    from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE, SFTDataConfig, prepare, tokenize
    from llmkit.models.loading import load_tokenizer, resolve_model
    from llmkit.tracking import PeakMemory

    set_seed(42)
    path = resolve_model(model_name)
    tok = load_tokenizer(ModelConfig(name=model_name), path)
    tok.chat_template = tok.chat_template or DEFAULT_CHAT_TEMPLATE
    data = prepare(SFTDataConfig(), seed=42)
    examples = Dataset.from_list([tokenize(r, tok, 256) for r in data.train])
    model = AutoModelForCausalLM.from_pretrained(path)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=micro, seed=42, data_seed=42, report_to="none",
                     use_cpu=True, max_length=256, gradient_checkpointing=False, dataloader_num_workers=0)
    loader = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=examples).get_train_dataloader()
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == steps * accumulation:
            break
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=steps)
    model.train()
    tokens, clock = 0, []
    mem = PeakMemory().__enter__()  # as llmkit's figure: the process's resident set while it trains
    for i in range(0, len(batches), accumulation):
        group = batches[i:i + accumulation]
        n_labels = sum(int((b["labels"][:, 1:] != -100).sum()) for b in group)
        for batch in group:  # the loss summed over the step's label tokens, as the Trainer weighs it
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(),
                                                     ignore_index=-100, reduction="sum") / n_labels
            loss.backward()
            tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        clock.append((time.perf_counter(), tokens))
    mem.__exit__(None, None, None)
    (t0, n0), (t1, n1) = clock[5], clock[-1]  # same steady-state window as llmkit's figure
    return (n1 - n0) / (t1 - t0), mem.mb


def plain_loop_process(model_name: str, steps: int) -> tuple[float, float]:
    """plain_loop in a fresh process, so its peak memory is its own (as each llmkit run's is)."""
    res = subprocess.run([sys.executable, __file__, "--plain-loop", model_name, str(steps)], capture_output=True,
                         text=True, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"plain loop failed:\n{res.stderr[-3000:]}")
    tps, mb = json.loads(res.stdout.strip().splitlines()[-1])
    return tps, mb


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU only, {os.cpu_count()} cores ({cpu})"
    return f"{dev}; torch {torch.__version__}; Python {platform.python_version()}"


def update_sections(path: Path, header: str, sections: dict[str, str]) -> str:
    """Replace the `## ` sections named in `sections` in the results file (keeping the others, so
    one part can be re-measured alone); the header line block is replaced too."""
    old = path.read_text() if path.exists() else ""
    parts, order, current = {}, [], None
    for line in old.splitlines():
        if line.startswith("## "):
            current = line[3:].split(" (")[0]
            order.append(current)
            parts[current] = [line]
        elif current:
            parts[current].append(line)
    for title, body in sections.items():
        if title not in parts:
            order.append(title)
        parts[title] = body.splitlines()
    return "\n".join([header, ""] + ["\n".join(parts[t]).rstrip() + "\n" for t in order]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per method run and packing run")
    ap.add_argument("--step-steps", type=int, default=20, help="optimizer steps per run in the llmkit vs plain-loop comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generate", type=int, default=84, help="held-out prompts for exact match after each method run")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--parts", default="methods,step,packing", help="which sections to (re-)measure")
    ap.add_argument("--plain-loop", nargs=2, metavar=("MODEL", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_loop:
        print(json.dumps(plain_loop(args.plain_loop[0], int(args.plain_loop[1]))))
        return
    import torch

    from llmkit.report import md_table

    parts = args.parts.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="llmkit-bench-"))
    sections = {}
    if "methods" in parts:
        rows = []
        for method in args.methods.split(","):
            m = llmkit_run(method, args.model, args.steps, tmp / method, generate=args.generate)
            rows.append([method, m["trainable_params"], m["tokens_per_second"], m["peak_memory_mb"], m["eval_loss"],
                         f"{100 * m['eval_exact_match']:.1f}%" if m.get("eval_exact_match") is not None else "n/a"])
            print(method, rows[-1][1:], flush=True)
        sections["Methods"] = "\n".join([
            f"## Methods ({args.steps} steps per run)", "",
            md_table(["method", "trainable params", "tokens/s", "peak memory (MB, RSS)", f"held-out loss after {args.steps} steps",
                      f"held-out exact match ({args.generate} prompts)"], rows)])

    if "step" in parts:
        n = args.step_steps
        ratios, ours, plain, trl, trl_ratios, mem = [], [], [], [], [], {"llmkit": [], "plain": [], "trl": []}
        for r in range(args.repeats):  # alternate, so drift in machine load hits both sides
            m = llmkit_run("lora", args.model, n, tmp / f"step-{r}")
            a = m["steady_tokens_per_second"]
            b, plain_mb = plain_loop_process(args.model, n)
            t = llmkit_run("lora", args.model, n, tmp / f"trl-{r}", "train.token_metrics=true")
            c = t["steady_tokens_per_second"]
            mem["llmkit"].append(m["peak_memory_mb"])
            mem["plain"].append(plain_mb)
            mem["trl"].append(t["peak_memory_mb"])
            ours.append(a)
            plain.append(b)
            trl.append(c)
            ratios.append(a / b)
            trl_ratios.append(c / b)
            print(f"repeat {r}: llmkit {a:.0f} tok/s, plain loop {b:.0f} tok/s, ratio {a / b:.3f}; "
                  f"with token metrics {c:.0f} ({c / b:.3f})", flush=True)
        sections["llmkit SFT step vs a plain transformers + PEFT loop"] = "\n".join([
            f"## llmkit SFT step vs a plain transformers + PEFT loop (LoRA, {n} steps per run, {args.repeats} repeats)", "",
            md_table(["", "median tokens/s", "runs", "median peak RSS (MB)"], [
                ["llmkit (default)", statistics.median(ours), ", ".join(f"{x:.0f}" for x in ours), statistics.median(mem["llmkit"])],
                ["llmkit, train.token_metrics=true (TRL's loss path)", statistics.median(trl), ", ".join(f"{x:.0f}" for x in trl),
                 statistics.median(mem["trl"])],
                ["plain loop", statistics.median(plain), ", ".join(f"{x:.0f}" for x in plain), statistics.median(mem["plain"])]]), "",
            f"Median ratio llmkit / plain: **{statistics.median(ratios):.3f}** (per repeat: {', '.join(f'{x:.3f}' for x in ratios)}); "
            f"with token metrics: {statistics.median(trl_ratios):.3f} (per repeat: {', '.join(f'{x:.3f}' for x in trl_ratios)}). "
            "The plain loop trains on the same batches: it takes them from an SFTTrainer dataloader built with llmkit's "
            "settings (same data, tokenisation, collator, micro batches of 4, shuffled order). All figures are steady-state: non-padding tokens "
            "per second from the end of step 5 to the last step, so start-up (model loading, optimizer creation, first-step "
            "allocation) and the final save are left out; llmkit's include everything its Trainer does per step (logging, "
            "scheduler, clipping, token counting). llmkit's default trainer asks the model for the logits of labelled "
            "positions only (the plain loop, like most hand-written ones, computes them everywhere); TRL's own "
            "SFTTrainer loss, which adds per-token entropy and accuracy for its logs (`train.token_metrics=true`), is "
            "measured alongside."])

    if "packing" in parts:
        packed, padded = [], []
        for r in range(args.repeats):
            padded.append(llmkit_run("lora", args.model, args.steps, tmp / f"pad-{r}")["tokens_per_second"])
            packed.append(llmkit_run("lora", args.model, args.steps, tmp / f"pack-{r}", "train.packing=true")["tokens_per_second"])
        sections["Packing"] = "\n".join([
            f"## Packing (padding-free) vs padded batches (LoRA, {args.steps} steps per run)", "",
            md_table(["", "median tokens/s"], [["padded", statistics.median(padded)], ["packed, padding-free", statistics.median(packed)]]), "",
            f"Ratio packed / padded: **{statistics.median(packed) / statistics.median(padded):.3f}**."])

    device = "gpu" if torch.cuda.is_available() else "cpu"
    header = (f"# SFT benchmark ({device})\n\nMachine: {machine()}. Model `{args.model}`, bundled instruction data, global "
              f"batch 16 (micro batches of 4), fp32. Command: `python benchmarks/sft_throughput.py --model {args.model} --steps "
              f"{args.steps} --step-steps {args.step_steps} --repeats {args.repeats}` (`--parts step` re-measures one section).")
    out = ROOT / "benchmarks" / "results" / f"sft_{device}{'' if args.model == 'smollm2' else '_' + args.model}.md"
    out.write_text(update_sections(out, header, sections))
    print(out.read_text())


if __name__ == "__main__":
    main()
