"""The four roles of PPO (policy, reference, value model, reward) and how they are built.

Memory modes (what the recipe's `method` makes of the policy, checked by capability in `load_policy`):
    an adapter that can be disabled (lora, qlora): the policy is the SFT model (an SFT adapter merged
              in) plus a fresh adapter; the reference is the same model with the adapter disabled: no
              second copy of the base
    anything else (full, last_layers): the policy trains the SFT model's own weights; the reference
              is a second, frozen copy of the SFT model

The value model is a backbone with a scalar head giving one value per token, initialised from the
reward model (its backbone and score head) as in the N+ details and PPOv2; with a reward function
instead of a reward model it starts from the policy's backbone with a zero head. The reward model
and the reference never train (parameters frozen; a test checks they are bitwise unchanged).
"""

from __future__ import annotations

import contextlib
import copy
import importlib

import torch
from torch import nn

from llmkit.errors import ConfigError, LlmkitError


class ValueModel(nn.Module):
    """backbone (hidden states) + linear head -> (B, T) values."""

    def __init__(self, backbone: nn.Module, hidden_size: int, head: nn.Linear | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1, bias=head is not None and head.bias is not None)
        with torch.no_grad():
            if head is not None:
                self.head.weight.copy_(head.weight[:1])
                if head.bias is not None:
                    self.head.bias.copy_(head.bias[:1])
            else:
                self.head.weight.zero_()

    def forward(self, input_ids, attention_mask, position_ids=None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids).last_hidden_state
        return self.head(hidden.float() if self.head.weight.dtype == torch.float32 else hidden).squeeze(-1)


def _backbone(model):
    """The transformer without its LM or score head (HF's base_model_prefix)."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        raise LlmkitError(f"{type(model).__name__}: cannot find its backbone (base_model_prefix)")
    return base


def value_from_reward_model(rm) -> ValueModel:
    rm = copy.deepcopy(rm)
    if hasattr(rm, "merge_and_unload"):
        rm = rm.merge_and_unload()
    head = getattr(rm, "score", None)
    if not isinstance(head, nn.Linear):
        raise LlmkitError(f"{type(rm).__name__}: expected a `score` linear head on the reward model")
    return ValueModel(_backbone(rm), rm.config.hidden_size, head)


def value_from_policy(policy) -> ValueModel:
    base = policy
    if hasattr(base, "get_base_model"):
        base = copy.deepcopy(base).merge_and_unload()
    else:
        base = copy.deepcopy(base)
    return ValueModel(_backbone(base), base.config.hidden_size, None)


def freeze(model) -> None:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


def load_policy(model_cfg, method_name: str, method_cfg):
    """-> (policy, tokenizer, reference). The method is applied to the SFT model (an SFT adapter merged in
    first). `reference()` is a context manager yielding the model that scores reference log-probs: when
    the policy is a PEFT model whose adapter can be disabled (LoRA, QLoRA, ...), the policy with it
    disabled, so there is no second copy of the base; otherwise (full, last_layers, ...) a frozen copy
    taken before training starts. The rule checks what the model can do, not the method's name."""
    from llmkit.methods import get_method

    model, tok = _load_sft(model_cfg)
    policy = get_method(method_name).apply(model, method_cfg)
    if not any(p.requires_grad for p in policy.parameters()):
        raise ConfigError(f"method {method_name} leaves no parameter of the policy trainable; PPO needs one "
                          f"(method=lora or method=full)")
    if hasattr(policy, "disable_adapter"):
        @contextlib.contextmanager
        def reference():
            with policy.disable_adapter():
                yield policy

        return policy, tok, reference
    ref = copy.deepcopy(policy)  # nothing has trained yet: the same weights as the SFT model, without a second load
    freeze(ref)
    return policy, tok, (lambda: contextlib.nullcontext(ref))


def _load_sft(cfg):
    """The SFT model as `model.*` asks (name, revision, trust_remote_code, dtype)."""
    from llmkit.models.trained import load_causal

    model, tok = load_causal(cfg.name, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, dtype=cfg.dtype)
    if hasattr(model, "merge_and_unload"):  # an SFT adapter: fold it in, it is the starting point
        model = model.merge_and_unload()
    return model, tok


def load_reward_function(spec: str):
    """`module:function` -> the function (prompts, responses, rows) -> list of floats."""
    if ":" not in spec:
        raise ConfigError(f"reward.function must look like module:function, got {spec!r}")
    mod, fn = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward.function {spec!r} cannot be imported: {e}") from None
