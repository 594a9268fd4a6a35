"""Adaptation methods behind one registry.

A method is a small object with a `name`, a config dataclass (`config_cls`, a subclass of
`MethodConfig`) and `apply(model, cfg) -> model`, which freezes, unfreezes or inserts parameters
in a Hugging Face model. After `apply`, `requires_grad` says what trains; what trained is what
gets saved. A method may also offer `fit_head(features, labels, cfg) -> (weight, bias)`, a
closed-form solver for a frozen backbone (the feature-based method uses logistic regression), and
`load_kwargs(cfg, model_path) -> dict` for `from_pretrained` (QLoRA quantises the base as it loads).
A method may define `save(model, dir, base_model=...)` / `load(base, dir)` for its own format;
otherwise `save_pretrained` is used (a PEFT model writes only its adapter, a plain model all of
its weights). Recipes take any method by name and never branch on it. Adding a method: one file, one line below.
"""

from __future__ import annotations

import difflib

from llmkit.errors import ConfigError
from llmkit.methods.adapter import Adapter
from llmkit.methods.feature_based import FeatureBased
from llmkit.methods.full import Full
from llmkit.methods.last_layers import LastLayers
from llmkit.methods.lora import Lora
from llmkit.methods.prefix import Prefix
from llmkit.methods.prompt import Prompt
from llmkit.methods.qlora import QLora

REGISTRY = {m.name: m for m in (FeatureBased(), LastLayers(), Full(), Lora(), QLora(), Adapter(), Prefix(), Prompt())}


def get_method(name: str):
    if name not in REGISTRY:
        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" (did you mean `{near[0]}`?)" if near else ""
        raise ConfigError(f"`method.name` has bad value {name!r}{hint}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared (tied) tensors are counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def save_trained(method_name: str, model, out_dir, *, base_model: str) -> None:
    """Write what trained: the method's own format, a PEFT adapter directory, or full weights."""
    method = get_method(method_name)
    if hasattr(method, "save"):
        method.save(model, out_dir, base_model=base_model)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)


def load_trained(method_name: str, base, saved_dir):
    """The inverse of `save_trained`: `base` is a freshly loaded base model of the same class."""
    from pathlib import Path

    method = get_method(method_name)
    saved_dir = Path(saved_dir)
    if hasattr(method, "load"):
        return method.load(base, saved_dir)
    if (saved_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(base, saved_dir)
    return type(base).from_pretrained(saved_dir)


def gradient_checkpointing_allowed(method_name: str, requested: bool) -> bool:
    """Whether to checkpoint: what the user asked, unless the method cannot train that way."""
    method = get_method(method_name)
    if requested and not getattr(method, "gradient_checkpointing_ok", True):
        print(f"llmkit: {method_name}: gradient checkpointing turned off, this method cannot train with it "
              f"(see llmkit/methods/{method_name}.py)")
        return False
    return requested


def load_kwargs(method_name: str, cfg, model_path: str | None = None) -> dict:
    """Extra `from_pretrained` arguments the method needs (empty for most)."""
    method = get_method(method_name)
    return method.load_kwargs(cfg, model_path) if hasattr(method, "load_kwargs") else {}
