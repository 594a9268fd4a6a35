"""The four roles of PPO (policy, reference, value model, reward) and how they are built.

Memory modes (the recipe's `method`):
    full      the policy trains every weight; the reference is a second, frozen copy of the SFT model
    lora      the policy is the SFT model (an SFT adapter merged in) plus a fresh LoRA adapter;
              the reference is the same model with the adapter disabled: no second copy of the base

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


def load_policy(name: str, method_name: str, method_cfg):
    """-> (policy, tokenizer, reference). `reference()` is a context manager yielding the model that
    scores reference log-probs: a frozen copy (method `full`), or the policy with its PPO LoRA
    adapter disabled (method `lora`: no second copy of the base)."""
    from llmkit.methods import get_method
    from llmkit.models.trained import load_causal

    model, tok = load_causal(name)
    if hasattr(model, "merge_and_unload"):  # an SFT adapter: fold it in, it is the starting point
        model = model.merge_and_unload()
    if method_name == "full":
        ref = copy.deepcopy(model)
        freeze(ref)
        for p in model.parameters():
            p.requires_grad_(True)
        return model, tok, (lambda: contextlib.nullcontext(ref))
    if method_name == "lora":
        policy = get_method("lora").apply(model, method_cfg)

        @contextlib.contextmanager
        def reference():
            with policy.disable_adapter():
                yield policy

        return policy, tok, reference
    raise ConfigError(f"ppo trains the policy with method full (separate frozen reference) or lora (reference = "
                      f"adapter disabled), got {method_name!r}")


def load_reward_function(spec: str):
    """`module:function` -> the function (prompts, responses, rows) -> list of floats."""
    if ":" not in spec:
        raise ConfigError(f"reward.function must look like module:function, got {spec!r}")
    mod, fn = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward.function {spec!r} cannot be imported: {e}") from None
