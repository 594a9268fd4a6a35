"""PPO rollouts against plain `generate`: llmkit's `rlhf.rollout.sample` (the sampling PPO does each update:
left-padded batch, KV cache, inference mode, pure temperature sampling, responses cut after EOS and masked)
against a bare `model.generate` on the same prompts with the same settings and the same model object
(the SFT model with a fresh LoRA policy adapter, as the ppo recipe holds it).

    .venv/bin/python benchmarks/ppo_rollout.py [--model smollm2] [--prompts 32] [--max-new-tokens 16] [--repeats 5]

Generated tokens per second (every sampled position up to each row's EOS, the same count both ways since
both draw from the same seeded generator), median of alternating repeats. Writes
benchmarks/results/ppo_rollout_<device>.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch
    from sft_throughput import machine

    from llmkit.methods import get_method
    from llmkit.models.loading import distinct_pad_token
    from llmkit.models.trained import load_causal
    from llmkit.recipes.ppo import _prompts, _query_ids
    from llmkit.report import md_table
    from llmkit.rlhf.reward_model import pad_batch
    from llmkit.rlhf.rollout import sample

    model, tok = load_causal(args.model)
    distinct_pad_token(tok)
    lora = get_method("lora")
    torch.manual_seed(0)
    policy = lora.apply(model, lora.config_cls()).eval()
    queries = [_query_ids(b["prompt"], tok) for b in _prompts("instructions", "train", args.prompts)]
    temperature = 0.7

    def llmkit_rollout() -> int:
        r = sample(policy, queries, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, max_new_tokens=args.max_new_tokens,
                   temperature=temperature)
        return int(r.response_mask.sum())

    def plain_generate() -> int:
        ids, mask = pad_batch(queries, tok.pad_token_id, side="left")
        with torch.no_grad():
            out = policy.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_k=0,
                                  top_p=1.0, max_new_tokens=args.max_new_tokens, min_new_tokens=1,
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        resp = out[:, ids.shape[1]:]
        is_eos = resp == tok.eos_token_id
        valid = (is_eos.long().cumsum(-1) - is_eos.long()) == 0  # up to and including the first EOS
        return int(valid.sum())

    ours, plain = [], []
    for r in range(args.repeats):  # alternate, so drift in machine load hits both
        for fn, acc in ((llmkit_rollout, ours), (plain_generate, plain)):
            torch.manual_seed(1000 + r)
            t = time.perf_counter()
            n = fn()
            acc.append(n / (time.perf_counter() - t))
        print(f"repeat {r}: llmkit {ours[-1]:.1f} tok/s, plain generate {plain[-1]:.1f} tok/s", flush=True)
    ratio = statistics.median(a / b for a, b in zip(ours, plain))
    device = "gpu" if torch.cuda.is_available() else "cpu"
    text = "\n".join([
        f"# PPO rollouts vs plain generate ({device})", "",
        f"Machine: {machine()}. Model `{args.model}` with a fresh LoRA policy adapter, {args.prompts} bundled training "
        f"prompts, up to {args.max_new_tokens} new tokens at temperature {temperature}. Command: `python "
        f"benchmarks/ppo_rollout.py --model {args.model} --prompts {args.prompts} --max-new-tokens {args.max_new_tokens} "
        f"--repeats {args.repeats}`.", "",
        md_table(["", "median generated tokens/s", "runs"], [
            ["llmkit rollout (`rlhf.rollout.sample`)", f"{statistics.median(ours):.1f}", ", ".join(f"{x:.0f}" for x in ours)],
            ["plain `generate`", f"{statistics.median(plain):.1f}", ", ".join(f"{x:.0f}" for x in plain)]]), "",
        f"Median per-repeat ratio llmkit / plain: **{ratio:.3f}**.", ""])
    out = ROOT / "benchmarks" / "results" / f"ppo_rollout_{device}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
