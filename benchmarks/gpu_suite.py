"""The GPU suite: one command, under 9 minutes on one GPU, that writes benchmarks/results/gpu_<device>.md.

    python benchmarks/gpu_suite.py prepare               # here: what the GPU machine lacks, into .gpu/
    python benchmarks/gpu_suite.py run                   # there: every part, results file
    python benchmarks/gpu_suite.py run --dry-run --out DIR   # any CPU: the same code on tiny shapes (make test runs it)

Parts (`--parts pipeline,sft,qlora`):
  pipeline  recipes/pipelines/instructgpt_gpu.yaml end to end (--fast sizes) with gpus=1, on a model of
            SmolLM2-135M-Instruct's shape and tokenizer with random-init weights: the real weights are a
            538 MB file that cannot travel to the GPU machine (its working tree is capped at 64 MiB), and the
            point here is that every stage runs on CUDA (ZeRO-2 under Accelerate for SFT and the reward
            model, DDP for PPO), not what the stages learn (the CPU quickstart shows that).
  sft       LoRA and full SFT (`llmkit train recipes/sft/{lora,full}.yaml`) on a random-init model of
            Qwen2-0.5B's shape (494M parameters) in bf16 with SDPA: steady-state tokens/s, model FLOPs
            utilisation, and peak memory (torch.cuda.max_memory_allocated) next to `llmkit
            estimate-memory`'s figure for the same recipe and overrides (without its 1 GiB overhead line,
            which max_memory_allocated does not see).
  qlora     the same for QLoRA (bitsandbytes NF4 on CUDA).

MFU (Chowdhery et al. 2022, PaLM, appendix B): model FLOPs per trained token are 6N + 12·L·h·s for
full finetuning (forward 2N, backward 4N, plus attention over s positions) and 4N + 8·L·h·s for
LoRA and QLoRA, whose frozen weights need no weight gradients (the adapters' own FLOPs are under
1% and left out); divided by the GPU's dense bf16 peak (H200/H100 SXM: 989 TFLOP/s).

The GPU machine has torch, transformers, accelerate and peft but not trl, datasets, deepspeed,
bitsandbytes or llmkit's metric packages: `prepare` downloads their wheels (deepspeed, which PyPI
ships as source only, is built here into a pure-Python wheel: its ops compile on first use there),
and copies SmolLM2's tokenizer and config, into `.gpu/` (git-ignored, carried by the device tool).
`run` installs the wheels into a private directory first when they are there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu"
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
# The wheels the GPU image lacks (name==version as constraints.txt pins them; their own needs too).
WHEELS = ["trl", "datasets", "dill", "multiprocess", "deepspeed", "hjson", "bitsandbytes", "sacrebleu", "rouge-score",
          "rapidfuzz", "evaluate", "bert-score", "nltk", "absl-py", "gguf", "portalocker", "xxhash", "aiohttp"]
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=32768)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=8192)


# ----------------------------------------------------------------------------- prepare (here)


def prepare() -> None:
    """Wheels and the SmolLM2 tokenizer/config into .gpu/ for the device tool to carry."""
    from llmkit.models.smollm2 import model_path

    wheels = CARRY / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = dict(line.strip().split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name in WHEELS:
        spec = f"{name}=={pins[name]}" if name in pins else name
        if name == "deepspeed":  # source only on PyPI: a pure-Python wheel, ops compiled on first use
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), spec],
                           check=True, env={**os.environ, "DS_BUILD_OPS": "0"})
            continue
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                        "--platform", "manylinux_2_24_x86_64", "-d", str(wheels), spec], check=True)
    shape = CARRY / "smollm2-shape"
    shape.mkdir(exist_ok=True)
    src = model_path()
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (src / f).is_file():
            shutil.copy(src / f, shape / f)
    size = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file())
    print(f"{CARRY}: {size / 2**20:.1f} MiB (the device tool carries at most 64 MiB with the working tree)")


def install_carried() -> None:
    wheels = sorted((CARRY / "wheels").glob("*.whl")) if (CARRY / "wheels").is_dir() else []
    if not wheels:
        return
    target = Path(tempfile.gettempdir()) / "llmkit-gpu-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(target), *map(str, wheels)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation",
                    "--target", str(target), "-e", str(ROOT)], check=False)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT), os.environ.get("PYTHONPATH", "")])
    sys.path[:0] = [str(target), str(ROOT)]


# ----------------------------------------------------------------------------- models of a shape


def random_model(out: Path, shape: dict, tokenizer_dir: Path | None) -> Path:
    """A random-init Llama of `shape` in `out` with a tiny trained tokenizer, or of the config and tokenizer in
    `tokenizer_dir` (SmolLM2's, carried to the GPU machine by `prepare`)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE
    from llmkit.models.tiny import train_tokenizer

    if tokenizer_dir is not None and (tokenizer_dir / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
        config = LlamaConfig.from_pretrained(tokenizer_dir) if (tokenizer_dir / "config.json").is_file() else None
    else:
        tok, config = train_tokenizer("llama"), None
    if config is None:
        config = LlamaConfig(**{**shape, "vocab_size": max(shape["vocab_size"], len(tok))},
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    tok.chat_template = tok.chat_template or DEFAULT_CHAT_TEMPLATE
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def long_texts(out: Path, tokens: int, n: int) -> Path:
    """`n` text rows of about `tokens` words each (sft's text format: the loss on every token)."""
    words = "the model reads a long text and learns to predict every next word of it in order".split()
    rows = [{"text": " ".join(words[(i + j) % len(words)] for j in range(tokens))} for i in range(n)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


# ----------------------------------------------------------------------------- parts


def llmkit(*args, env=None) -> None:
    cmd = [sys.executable, "-m", "llmkit", *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")


def part_pipeline(tmp: Path, dry: bool) -> list[str]:
    model = random_model(tmp / "smollm2-shape", TINY, None if dry else CARRY / "smollm2-shape")
    t0 = time.perf_counter()
    out = tmp / "pipeline"
    args = ["pipeline", ROOT / "recipes/pipelines/instructgpt_gpu.yaml", "--fast", "--output", out, f"model={model}",
            "gpus=1", "encoder=tiny-bert"]
    llmkit(*args)
    seconds = time.perf_counter() - t0
    record = json.loads((out / "pipeline.json").read_text())
    rows = [[s, e["kind"], e["status"], f"{e.get('seconds', 0):.0f}"] for s, e in record["stages"].items()]
    from llmkit.report import md_table

    shown = "SmolLM2-135M-Instruct's shape and tokenizer" if not dry else "a tiny random Llama (dry run)"
    return [f"`llmkit pipeline recipes/pipelines/instructgpt_gpu.yaml --fast gpus=1` on {shown}, random-init weights: "
            f"{seconds:.0f} s for {len(rows)} stages (SFT and the reward model under ZeRO-2, PPO under DDP).", "",
            md_table(["stage", "kind", "status", "seconds"], rows)]


def flops_per_token(n_params: int, cfg, seq: int, full: bool) -> float:
    attn = cfg.num_hidden_layers * cfg.hidden_size * seq
    return (6 * n_params + 12 * attn) if full else (4 * n_params + 8 * attn)


def part_sft(tmp: Path, dry: bool, methods=("lora", "full")) -> list[str]:
    import torch
    from transformers import AutoConfig

    from llmkit.memory import OVERHEAD_BYTES, estimate_recipe
    from llmkit.report import md_table

    seq, steps, batch, micro = (32, 4, 4, 2) if dry else (1024, 30, 16, 8)
    model = random_model(tmp / "qwen2-0.5b-shape", TINY if dry else QWEN2_05B, None)
    cfg = AutoConfig.from_pretrained(model)
    n_params = None
    data = long_texts(tmp / "long.jsonl", seq, max(64, batch * (steps + 2)))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    peak = next((v for k, v in PEAK_BF16.items() if gpu and k in gpu), None)
    rows = []
    for method in methods:
        out = tmp / f"sft-{method}"
        common = [f"model={model}", f"data.path={data}", "data.format=text", f"model.max_length={seq}",
                  f"train.max_steps={steps}", f"train.batch_size={batch}", f"train.micro_batch_size={micro}",
                  "eval.num_generate=0", "eval.before=false", "data.max_test_samples=8", "train.logging_steps=5",
                  "output.save_model=false"]
        if not dry:
            common += ["model.dtype=bfloat16", "train.mixed_precision=bf16"]
        if method == "full":
            common += ["train.learning_rate=1e-5"]
        recipe = ROOT / f"recipes/sft/{method}.yaml"
        llmkit("train", recipe, *common, f"output_dir={out}")
        m = json.loads((out / "metrics.json").read_text())
        est = estimate_recipe(recipe, common, gpu_memory_gib=None, precision="bf16").to_json()
        one = next(r for r in est["strategies"] if r["stage"] == 0)
        estimated = (one["total"] - OVERHEAD_BYTES) / 2**20
        n_params = m["total_params"]
        tps = m.get("steady_tokens_per_second") or m["tokens_per_second"]
        mfu = tps * flops_per_token(n_params, cfg, seq, method == "full") / peak if peak else None
        measured = m["peak_memory_mb"]
        rows.append([method, f"{m['trainable_params']:,}", f"{tps:,.0f}", f"{100 * mfu:.1f}%" if mfu else "n/a",
                     f"{measured:,.0f} ({m['peak_memory_kind']})", f"{estimated:,.0f}",
                     f"{100 * (estimated - measured) / measured:+.0f}%"])
    shape = ("a tiny Llama (dry run, CPU, fp32)" if dry else
             f"a random-init Llama with Qwen2-0.5B's dimensions ({n_params:,} parameters), bf16, SDPA")
    return [f"`llmkit train recipes/sft/<method>.yaml` on {shape}: {steps} steps of {batch} sequences of {seq} tokens "
            f"(micro batch {micro}); tokens/s steady-state; MFU against {peak / 1e12:.0f} TFLOP/s dense bf16." if peak else
            f"`llmkit train recipes/sft/<method>.yaml` on {shape}: {steps} steps of {batch} x {seq} tokens; no MFU off a known GPU.",
            "", md_table(["method", "trainable params", "tokens/s", "MFU", "peak memory MiB (measured)",
                          "estimate-memory MiB (without overhead)", "estimate vs measured"], rows)]


def part_qlora(tmp: Path, dry: bool) -> list[str]:
    import torch

    if not torch.cuda.is_available() and not dry:
        return ["No CUDA device: QLoRA on CUDA not measured."]
    return part_sft(tmp, dry, methods=("qlora",))


PARTS = {"pipeline": ("InstructGPT pipeline on the GPU", part_pipeline),
         "sft": ("SFT throughput, MFU and memory", part_sft),
         "qlora": ("QLoRA on CUDA", part_qlora)}


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {os.cpu_count()} CPU cores; torch {torch.__version__}, "
                f"CUDA {torch.version.cuda}; Python {platform.python_version()}")
    return f"CPU only ({os.cpu_count()} cores); torch {torch.__version__}; Python {platform.python_version()}"


def run(parts: list[str], out_dir: Path, dry: bool) -> Path:
    import torch

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="llmkit-gpu-"))
    lines = [f"# GPU suite{' (dry run on CPU)' if dry else ''}", "", f"Machine: {machine()}.", ""]
    for name in parts:
        title, fn = PARTS[name]
        t = time.perf_counter()
        (tmp / name).mkdir(parents=True)
        body = fn(tmp / name, dry)
        lines += [f"## {title}", "", *body, "", f"({time.perf_counter() - t:.0f} s)", ""]
        print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
    lines += [f"Whole suite: {time.perf_counter() - t0:.0f} s. Command: `python benchmarks/gpu_suite.py run"
              f"{' --dry-run' if dry else ''} --parts {','.join(parts)}`.", ""]
    device = "cpu_dry_run" if dry else torch.cuda.get_device_name(0).lower().replace("nvidia ", "").replace(" ", "_")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"gpu_{device}.md"
    path.write_text("\n".join(lines))
    print(path.read_text())
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("verb", choices=("prepare", "run"))
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU: checks that every part runs")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    if args.verb == "prepare":
        return prepare()
    install_carried()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; use --dry-run on a CPU")
    run(args.parts.split(","), Path(args.out), args.dry_run)


if __name__ == "__main__":
    main()
