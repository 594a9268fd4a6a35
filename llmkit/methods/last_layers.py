"""Finetune I: freeze the pretrained model, train the output layers, optionally with the last N
transformer blocks (Raschka, Machine Learning Q&A, Q19, "updating the output layers").

Trainable parameters (closed form): the task head, plus for N > 0 the last N blocks and any final
norm after them (GPT-2's ln_f, Llama's norm). For a causal LM the output layer is `lm_head` (it
trains here too; with tied embeddings that is the input embedding matrix as well).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import ConfigError, MethodConfig, opt
from llmkit.models.blocks import find_blocks, modules_after_blocks


@dataclass
class LastLayersConfig(MethodConfig):
    name: str = opt("last_layers", "Train the output layers (and the last N blocks).")
    trainable_layers: int = opt(0, "How many of the last transformer blocks train with the head (0: head only).")

    def validate(self) -> None:
        if self.trainable_layers < 0:
            raise ConfigError(f"method.trainable_layers must be >= 0, got {self.trainable_layers}")


class LastLayers:
    name = "last_layers"
    config_cls = LastLayersConfig
    fit_head = None

    def apply(self, model, cfg: LastLayersConfig):
        for p in model.parameters():
            p.requires_grad_(False)
        _, blocks = find_blocks(model)
        if cfg.trainable_layers > len(blocks):
            raise ConfigError(f"method.trainable_layers={cfg.trainable_layers} but the model has only {len(blocks)} blocks")
        if cfg.trainable_layers > 0:
            for block in list(blocks)[-cfg.trainable_layers:]:
                block.requires_grad_(True)
            for module in modules_after_blocks(model):
                module.requires_grad_(True)
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if out is not None:
            out.requires_grad_(True)
        return model
