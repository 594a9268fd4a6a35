"""LoRA: low-rank updates to frozen weight matrices (Hu et al. 2021, arXiv 2106.09685), via PEFT.

Each adapted weight W (d_out x d_in) becomes W + (alpha / r) * B A with A (r x d_in), B (d_out x r),
B initialised to zero so the model equals the base at step 0. Trainable parameters per adapted
matrix: r * (d_in + d_out); a 25 x 50 weight with rank 5 has 5 * (25 + 50) = 375. rsLoRA scales
by alpha / sqrt(r) (Kalajdzievski 2023); DoRA adds a magnitude vector of d_out per matrix (Liu et
al. 2024). `target_modules: [all-linear]` adapts every linear layer except the output head (and
BERT's pooler, which mean pooling never uses). Saved as a PEFT adapter directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import ConfigError, MethodConfig, opt
from llmkit.methods._peft import task_type, wrap


@dataclass
class LoraMethodConfig(MethodConfig):
    name: str = opt("lora", "Low-rank adapters on frozen weights (PEFT).")
    r: int = opt(8, "Rank of the update B A.")
    alpha: float = opt(16.0, "Scale numerator: the update is (alpha / r) B A.")
    dropout: float = opt(0.05, "Dropout on the LoRA branch input.")
    target_modules: list[str] = opt(factory=lambda: ["all-linear"], help="Module names to adapt, or [all-linear].")
    use_rslora: bool = opt(False, "Scale by alpha / sqrt(r) (rank-stabilised LoRA).")
    use_dora: bool = opt(False, "Weight-decomposed LoRA (DoRA).")

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"method.r must be >= 1, got {self.r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"method.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("method.target_modules must name at least one module (or all-linear)")


def peft_lora_config(model, cfg: LoraMethodConfig):
    from peft import LoraConfig

    targets = "all-linear" if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
    unused = r".*pooler.*" if any("pooler" in n for n, _ in model.named_modules()) else None
    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                      exclude_modules=unused, use_rslora=cfg.use_rslora, use_dora=cfg.use_dora,
                      task_type=task_type(model))


class Lora:
    name = "lora"
    config_cls = LoraMethodConfig
    fit_head = None

    def apply(self, model, cfg: LoraMethodConfig):
        try:
            return wrap(model, peft_lora_config(model, cfg))
        except ValueError as e:  # PEFT: "Target modules {...} not found in the base model"
            raise ConfigError(f"method.target_modules: {e}") from None
