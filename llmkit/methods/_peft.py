"""What the PEFT-backed methods (lora, qlora, prefix, prompt) share: the task type, and saving /
loading through PEFT's own adapter directories (`PeftModel.from_pretrained` loads them)."""

from __future__ import annotations


def task_type(model):
    """CAUSAL_LM for a model with an LM head, FEATURE_EXTRACTION for a bare backbone."""
    from peft import TaskType

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return TaskType.CAUSAL_LM if head is not None else TaskType.FEATURE_EXTRACTION


def wrap(model, peft_config):
    from peft import get_peft_model

    if getattr(model, "peft_config", None):
        from llmkit.errors import ConfigError

        raise ConfigError("the model already carries a PEFT adapter; apply one method per run")
    return get_peft_model(model, peft_config)
