"""Adaptation methods behind one registry.

A method is a small object with a `name`, a config dataclass (`config_cls`, a subclass of
`MethodConfig`) and `apply(model, cfg) -> model`, which freezes, unfreezes or inserts parameters
in a Hugging Face model. After `apply`, `requires_grad` says what trains; what trained is what
gets saved. A method may also offer `fit_head(features, labels, cfg) -> (weight, bias)`, a
closed-form solver for a frozen backbone (the feature-based method uses logistic regression).
Recipes take any method by name and never branch on it. Adding a method: one file, one line below.
"""

from __future__ import annotations

import difflib

from llmkit.errors import ConfigError
from llmkit.methods.feature_based import FeatureBased
from llmkit.methods.full import Full
from llmkit.methods.last_layers import LastLayers

REGISTRY = {m.name: m for m in (FeatureBased(), LastLayers(), Full())}


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
