"""Where LoRA SFT of SmolLM2-135M spends its memory on CPU, and what the sft recipe's defaults bring it to.

    .venv/bin/python benchmarks/sft_memory.py [--steps 4]

Each configuration runs in a fresh process (so its peak resident set is its own): a LoRA step (rank 8,
every linear layer, as recipes/sft/lora.yaml) over 16 bundled instruction examples per optimizer step,
with micro batches of 16 or 4, the full logits or only the labelled positions' (what llmkit's trainer
asks the model for), fp32. Per configuration: the bytes autograd saves for the backward pass per token
position (torch.autograd.graph.saved_tensors_hooks, unique storages, the model's own weights left out),
the logits' size, the median step time, and the peak RSS sampled every 20 ms. Writes
benchmarks/results/sft_memory_<device>.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("micro 16, full logits (llmkit before)", 16, False), ("micro 16, labelled logits", 16, True),
           ("micro 4, full logits", 4, False), ("micro 4, labelled logits (llmkit's default)", 4, True)]


def one(micro: int, sparse: bool, steps: int) -> dict:
    import psutil
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.data.sft import SFTDataConfig, prepare, tokenize
    from llmkit.models.smollm2 import model_path

    proc, peak = psutil.Process(), [0]

    def sampler():
        while True:
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sampler, daemon=True).start()
    path = model_path()
    tok = AutoTokenizer.from_pretrained(path)
    rows = [tokenize(r, tok, 256) for r in prepare(SFTDataConfig(), seed=42).train[:16 * steps]]
    model = AutoModelForCausalLM.from_pretrained(path)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    loaded = proc.memory_info().rss
    times, saved_per_pos, logits_bytes = [], None, 0
    for step in range(steps):
        t = time.perf_counter()
        for i in range(0, 16, micro):
            chunk = rows[step * 16 + i: step * 16 + i + micro]
            width = max(len(c["input_ids"]) for c in chunk)
            ids = torch.tensor([c["input_ids"] + [tok.pad_token_id] * (width - len(c["input_ids"])) for c in chunk])
            labels = torch.tensor([c["labels"] + [-100] * (width - len(c["labels"])) for c in chunk])
            mask = torch.tensor([[1] * len(c["input_ids"]) + [0] * (width - len(c["input_ids"])) for c in chunk])
            extra = {}
            if sparse:
                keep = torch.zeros_like(labels, dtype=torch.bool)
                keep[:, :-1] = labels[:, 1:] != -100
                extra = {"logits_to_keep": keep, "shift_labels": labels[:, 1:][keep[:, :-1]]}
            seen: dict[int, int] = {}

            def pack(x, seen=seen):
                st = x.untyped_storage()
                if st.data_ptr() not in weights:
                    seen[st.data_ptr()] = st.nbytes()
                return x

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
                out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False, **extra)
            if step == 1 and i == 0:
                saved_per_pos = sum(seen.values()) / ids.numel()
                logits_bytes = out.logits.numel() * out.logits.element_size()
            (out.loss * len(chunk) / 16).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    return {"model_rss_mb": loaded / 2**20, "peak_rss_mb": peak[0] / 2**20, "saved_kb_per_position": saved_per_pos / 1024,
            "logits_mb_per_micro_batch": logits_bytes / 2**20, "step_seconds": statistics.median(times[1:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1] == "1", args.steps)))
        return
    import torch
    from sft_throughput import machine

    from llmkit.report import md_table

    rows = []
    for label, micro, sparse in CONFIGS:
        res = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", str(micro), str(int(sparse))],
                             capture_output=True, text=True, cwd=ROOT)
        if res.returncode:
            raise SystemExit(res.stderr[-3000:])
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(label, r, flush=True)
        rows.append([label, f"{r['model_rss_mb']:,.0f}", f"{r['saved_kb_per_position']:,.0f}",
                     f"{r['logits_mb_per_micro_batch']:,.0f}", f"{r['peak_rss_mb']:,.0f}", f"{r['step_seconds']:.2f}"])
    device = "gpu" if torch.cuda.is_available() else "cpu"
    text = "\n".join([
        f"# Where LoRA SFT of SmolLM2-135M spends its memory ({device})", "",
        f"Machine: {machine()}. Command: `python benchmarks/sft_memory.py --steps {args.steps}`. LoRA rank 8 on every "
        "linear layer, fp32, 16 bundled instruction examples per optimizer step (46 tokens each on average, padded to "
        "the longest of each micro batch), one fresh process per row.", "",
        md_table(["configuration", "RSS with model loaded (MB)", "saved for backward per token position (KB)",
                  "logits per micro batch (MB)", "peak RSS (MB)", "step (s, median)"], rows), "",
        "Saved tensors exclude the model's weights (which autograd also holds for the input gradients). The rest of "
        "the peak above model + saved tensors + logits is the backward pass's transient gradients and what glibc's "
        "allocator keeps after freeing (it returns little of a fragmented heap to the system).", ""])
    out = ROOT / "benchmarks" / "results" / f"sft_memory_{device}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
