"""Soft prompt tuning: trainable virtual-token embeddings placed before the input (Lester et al.
2021, arXiv 2104.08691), via PEFT.

Trainable parameters: num_virtual_tokens * H. The model sees num_virtual_tokens more positions, so
it does not equal the base at step 0. `init_text` starts the prompt from the embeddings of a real
text (repeated or cut to length), which trains faster than random vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import ConfigError, MethodConfig, opt
from llmkit.methods._peft import task_type, wrap


@dataclass
class PromptConfig(MethodConfig):
    name: str = opt("prompt", "Trainable virtual-token embeddings before the input (PEFT).")
    num_virtual_tokens: int = opt(20, "Soft prompt length.")
    init_text: str | None = opt(None, "Initialise the soft prompt from this text's token embeddings (default: random).")

    def validate(self) -> None:
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}")


class Prompt:
    name = "prompt"
    config_cls = PromptConfig
    fit_head = None

    def apply(self, model, cfg: PromptConfig):
        from peft import PromptTuningConfig, PromptTuningInit

        kwargs = {}
        if cfg.init_text:
            kwargs = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": cfg.init_text,
                      "tokenizer_name_or_path": model.config._name_or_path}
        return wrap(model, PromptTuningConfig(task_type=task_type(model), num_virtual_tokens=cfg.num_virtual_tokens, **kwargs))
