"""Finetune II: every layer trains (Raschka, Machine Learning Q&A, Q19, "finetuning all layers").

The most expressive conventional method and the most expensive: gradients and optimizer state for
all N parameters (about 16 bytes per parameter with mixed-precision Adam).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import MethodConfig, opt


@dataclass
class FullConfig(MethodConfig):
    name: str = opt("full", "Train all layers.")


class Full:
    name = "full"
    config_cls = FullConfig
    fit_head = None

    def apply(self, model, cfg: FullConfig):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
