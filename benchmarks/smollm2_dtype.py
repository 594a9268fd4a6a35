"""Which dtype llmkit keeps SmolLM2-135M-Instruct in: fp32 against bf16, measured on the same batches.

    .venv/bin/python benchmarks/smollm2_dtype.py [--repeats 5] [--steps 6]

For each dtype: how far its logits are from the fp32 weights' (the GGUF's dequantised values, which fp32
holds exactly) on the three prompts the conversion checks, and, alternating the two in each repeat so that
drift in machine load hits both, the time of a LoRA training step (16 bundled instruction examples, micro
batches of 4, as the sft recipe runs) and of greedy generation (32 held-out prompts, 24 new tokens).
bf16 is tried two ways: bf16 weights (LoRA adapters in fp32), and fp32 weights under torch.autocast(bf16).
Writes benchmarks/results/smollm2_dtype_<device>.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="LoRA steps per timing (the first is left out)")
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from sft_throughput import machine
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.data.sft import SFTDataConfig, generation_prompt, prepare, tokenize
    from llmkit.eval.heldout import generate
    from llmkit.models.smollm2 import CHECK_PROMPTS, model_path
    from llmkit.report import md_table

    path = model_path()
    tok = AutoTokenizer.from_pretrained(path)
    data = prepare(SFTDataConfig(), seed=42)
    train = [tokenize(r, tok, 256) for r in data.train[:16 * args.steps]]
    prompts = [generation_prompt(r, tok)[0] for r in data.test[:32]]
    variants = {"fp32": (torch.float32, False), "bf16 weights": (torch.bfloat16, False), "fp32 + bf16 autocast": (torch.float32, True)}

    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    diffs = {}
    for name, (dtype, autocast) in variants.items():
        m = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        worst = 0.0
        with torch.no_grad():
            for msgs in CHECK_PROMPTS:
                ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    got = m(input_ids=ids).logits.float()
                worst = max(worst, (got - ref(input_ids=ids).logits).abs().max().item())
        diffs[name] = worst
    del ref

    def lora_step_seconds(dtype, autocast) -> float:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        model.train()
        times = []
        for step in range(args.steps):
            t = time.perf_counter()
            for i in range(0, 16, 4):
                chunk = train[step * 16 + i: step * 16 + i + 4]
                width = max(len(c["input_ids"]) for c in chunk)
                ids = torch.tensor([c["input_ids"] + [tok.pad_token_id] * (width - len(c["input_ids"])) for c in chunk])
                labels = torch.tensor([c["labels"] + [-100] * (width - len(c["labels"])) for c in chunk])
                mask = torch.tensor([[1] * len(c["input_ids"]) + [0] * (width - len(c["input_ids"])) for c in chunk])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
                (loss / 4).backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t)
        return statistics.median(times[1:])

    def generate_seconds(dtype, autocast) -> float:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            generate(model, tok, prompts, 24, 32, progress=False)
        return time.perf_counter() - t

    steps = {n: [] for n in variants}
    gens = {n: [] for n in variants}
    for r in range(args.repeats):
        for name, (dtype, autocast) in variants.items():
            steps[name].append(lora_step_seconds(dtype, autocast))
            gens[name].append(generate_seconds(dtype, autocast))
            print(f"repeat {r} {name}: step {steps[name][-1]:.2f} s, generate {gens[name][-1]:.2f} s", flush=True)
    base_step, base_gen = statistics.median(steps["fp32"]), statistics.median(gens["fp32"])
    rows = [[n, f"{diffs[n]:.4f}", f"{statistics.median(steps[n]):.2f}", f"{base_step / statistics.median(steps[n]):.2f}x",
             f"{statistics.median(gens[n]):.2f}", f"{base_gen / statistics.median(gens[n]):.2f}x"] for n in variants]
    import torch as _t

    device = "gpu" if _t.cuda.is_available() else "cpu"
    text = "\n".join([
        f"# SmolLM2-135M-Instruct: fp32 or bf16 ({device})", "",
        f"Machine: {machine()}. Command: `python benchmarks/smollm2_dtype.py --repeats {args.repeats} --steps {args.steps}`; "
        f"medians of {args.repeats} alternating repeats.", "",
        md_table(["weights", "max abs logit difference to fp32", "LoRA step (s, 16 examples)", "step speed vs fp32",
                  "generate (s, 32 prompts x 24 tokens)", "generate speed vs fp32"], rows), "",
        "The fp32 row is the GGUF's dequantised weights exactly (the conversion checks a max abs logit difference of 0 "
        "against transformers' own GGUF loader); bf16 rounds them to 8 mantissa bits.", ""])
    out = ROOT / "benchmarks" / "results" / f"smollm2_dtype_{device}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
