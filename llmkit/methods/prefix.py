"""Prefix tuning: trainable key/value vectors prepended in every attention layer (Li & Liang 2021,
arXiv 2101.00190), via PEFT.

Trainable parameters: without reparameterisation, num_virtual_tokens * num_layers * 2 * H (a key
and a value vector per layer and virtual token; with grouped-query attention the kv width replaces
H). With `projection: true`, an MLP (H -> projection_hidden -> L*2*H) produces them during training
(Li & Liang's stabiliser): num_virtual_tokens * H + H*P + P + P*L*2*H + L*2*H.
The model does NOT equal the base at step 0: the prefixes change attention from the start.

Gradient checkpointing is turned off for this method. PEFT hands the prefixes to the model as
`past_key_values`; transformers' `GradientCheckpointingLayer` sets `past_key_values=None` inside a
checkpointed layer in training (recomputing a layer would append to the cache twice), while PEFT
has already widened the attention mask by the prefix length. Under TRL's SFTConfig, whose default
is `gradient_checkpointing=True`, that is the error seen on Llama models with transformers 5.23 /
peft 0.21.2 / trl 1.16.0: "The size of tensor a (35) must match the size of tensor b (55) at
non-singleton dimension 3" (55 = 35 tokens + 20 prefixes). Were the shapes to agree, the prefixes
would be silently ignored. The prefixes themselves are small, so little memory is at stake.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import ConfigError, MethodConfig, opt
from llmkit.methods._peft import task_type, wrap


@dataclass
class PrefixConfig(MethodConfig):
    name: str = opt("prefix", "Trainable key/value prefixes in every layer (PEFT).")
    num_virtual_tokens: int = opt(20, "Prefix length in every layer.")
    projection: bool = opt(False, "Reparameterise the prefixes through an MLP while training.")
    projection_hidden: int = opt(128, "Hidden size of that MLP.")

    def validate(self) -> None:
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}")
        if self.projection_hidden < 1:
            raise ConfigError(f"method.projection_hidden must be >= 1, got {self.projection_hidden}")


class Prefix:
    name = "prefix"
    config_cls = PrefixConfig
    fit_head = None
    gradient_checkpointing_ok = False  # see the module docstring

    def apply(self, model, cfg: PrefixConfig):
        from peft import PrefixTuningConfig

        return wrap(model, PrefixTuningConfig(task_type=task_type(model), num_virtual_tokens=cfg.num_virtual_tokens,
                                              prefix_projection=cfg.projection, encoder_hidden_size=cfg.projection_hidden))
