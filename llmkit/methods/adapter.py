"""Bottleneck adapters (Houlsby et al. 2019), written in llmkit.

Paper: Houlsby, Giurgiu, Jastrzebski, Morrone, de Laroussilhe, Gesmundo, Attariyan and Gelly,
"Parameter-Efficient Transfer Learning for NLP", ICML 2019, https://arxiv.org/abs/1902.00751

What it is: the pretrained model stays frozen and every transformer block gets two small
bottleneck MLPs with a residual, `h + up(act(down(h)))`, down: H -> m, up: m -> H. One sits on
the output of the attention output projection, one on the output of the feed-forward output
projection: on each sublayer's output, before the host adds its own residual and normalises
(Fig. 2 of the paper). Only the adapters train, plus, as in the paper, the host's normalisation
layers (`train_layer_norms`: every LayerNorm / RMSNorm of the model, embeddings and final norm
included, as the released code trains its whole `layer_norm` collection). The task head trains
as usual in the recipe; a causal LM's `lm_head` stays frozen.

Parameters (closed form, `adapter_param_count`): one adapter has 2*H*m + m + H (two matrices, two
biases); two per block, so L blocks add 2*L*(2*H*m + m + H). all-MiniLM-L6-v2 (H=384, L=6) with
the default m=64: 595,200 adapter parameters (2.6% of its 22.7M), plus 9,984 norm parameters.
m > H is allowed (nothing breaks, the identity start still holds) but is no longer a bottleneck.

Choices, and why:
- Non-linearity: gelu by default, as in the authors' released code (google-research/adapter-bert,
  `feedforward_adapter`); the paper does not name one. relu and silu (alias swish, AdapterHub's
  default for its "houlsby" config) are there to compare.
- Initialisation: the up-projection is all zeros, so at step 0 the adapted model equals the base
  model exactly (bitwise). The paper starts near identity instead (both projections drawn from
  N(0, 1e-2) truncated at two standard deviations, Sec. 3.6). The down-projection keeps that draw;
  it gets gradients from the second step, once the up-projection has moved.
- Placement: the host's projection is wrapped (`base_layer`, PEFT's name, keeps its weights
  reachable), so in BERT and GPT-2 the adapter runs just before the host's residual dropout rather
  than after it as in the released code. Identical at evaluation; in training, dropout now falls
  on the adapter's output instead of its input.

Why not a library: AdapterHub's `adapters` package pins transformers 4.x; llmkit is on 5.x.

Saving is PEFT-like, adapter only: `save_adapter(model, dir)` writes `adapter_model.safetensors`
(adapter tensors, plus the norms when they trained) and `adapter_config.json` (marked
`"llmkit_method": "adapter"`); `load_adapter(fresh_base, dir)` inserts adapters into a fresh base
model of the same class and loads them strictly. Unlike LoRA, an adapter cannot be merged into the
base weights: the non-linearity is in the way.

Run it: `llmkit train recipes/classify/adapter.yaml`, or any classify / SFT recipe with
`method.name=adapter [method.bottleneck=64 method.non_linearity=gelu method.train_layer_norms=true]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmkit.config import MethodConfig, opt
from llmkit.errors import ConfigError

WEIGHTS_NAME, CONFIG_NAME = "adapter_model.safetensors", "adapter_config.json"
ACTIVATION_NAMES = ("gelu", "relu", "silu", "swish")


@dataclass
class AdapterConfig(MethodConfig):
    name: str = opt("adapter", "Houlsby bottleneck adapters after every attention and feed-forward sublayer.")
    bottleneck: int = opt(64, "Adapter width m (H -> m -> H); the paper tries 8, 64 and 256. m > H works but is no bottleneck.")
    non_linearity: Literal["gelu", "relu", "silu", "swish"] = opt("gelu", "Activation between the two projections (swish = silu).")
    train_layer_norms: bool = opt(True, "Also train the host's LayerNorm/RMSNorm parameters, as the paper does.")

    def validate(self) -> None:
        # Checked here as well as by the config loader, so a config built in code fails the same way.
        if isinstance(self.bottleneck, bool) or not isinstance(self.bottleneck, int) or self.bottleneck < 1:
            raise ConfigError(f"method.bottleneck must be an integer >= 1, got {self.bottleneck!r}")
        if self.non_linearity not in ACTIVATION_NAMES:
            raise ConfigError(f"method.non_linearity must be one of {', '.join(ACTIVATION_NAMES)}, got {self.non_linearity!r}")
        if not isinstance(self.train_layer_norms, bool):
            raise ConfigError(f"method.train_layer_norms must be true or false, got {self.train_layer_norms!r}")


def adapter_param_count(hidden: int, bottleneck: int, num_layers: int) -> int:
    """Trainable adapter parameters: 2 adapters per block, each 2*H*m + m + H (norms not included)."""
    return num_layers * 2 * (2 * hidden * bottleneck + bottleneck + hidden)


def is_adapter_dir(path: str | Path) -> bool:
    """True for a directory written by `save_adapter` (a PEFT adapter directory gives False)."""
    try:
        meta = json.loads((Path(path) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("llmkit_method") == "adapter"


class Adapter:
    name = "adapter"
    config_cls = AdapterConfig
    fit_head = None

    def apply(self, model, cfg: AdapterConfig):
        from llmkit.methods.bottleneck import insert_adapters

        return insert_adapters(model, cfg)

    def save(self, model, out_dir, *, base_model: str | None = None) -> Path:
        from llmkit.methods.bottleneck import save_adapter

        return save_adapter(model, out_dir, base_model=base_model)

    def load(self, model, path):
        from llmkit.methods.bottleneck import load_adapter

        return load_adapter(model, path)

