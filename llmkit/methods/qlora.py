"""QLoRA: LoRA on a base model quantised to 4-bit NormalFloat (Dettmers et al. 2023,
arXiv 2305.14314), via bitsandbytes and PEFT.

The base weights are stored in 4 bits (NF4, optionally with the quantisation constants quantised
again, "double quantisation") and dequantised block by block in the forward pass; only the LoRA
matrices, kept in full precision, train. Trainable parameters are LoRA's: r * (d_in + d_out) per
adapted matrix. Weight memory drops to about 0.5 byte per base parameter (plus constants).

The quantisation happens when the model loads, so this method adds `load_kwargs` (the recipe
passes them to `from_pretrained`). bitsandbytes 0.50 runs 4-bit layers on CPU too; its CPU kernels
work on 64-wide blocks, so every quantised layer's input width must be a multiple of 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmkit.config import opt
from llmkit.methods._peft import wrap
from llmkit.methods.lora import LoraMethodConfig, peft_lora_config


@dataclass
class QLoraConfig(LoraMethodConfig):
    name: str = opt("qlora", "LoRA on a 4-bit quantised base (bitsandbytes + PEFT).")
    quant_type: Literal["nf4", "fp4"] = opt("nf4", "4-bit data type of the base weights.")
    double_quant: bool = opt(True, "Quantise the quantisation constants too (saves ~0.4 bit/parameter).")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = opt("float32", "Dtype the 4-bit weights are dequantised to for matmuls (bfloat16 on GPUs).")


def cpu_unquantisable(model_path: str) -> list[str]:
    """Names (last two parts, e.g. `mlp.down_proj`) of linear layers whose input width is not a
    multiple of 64, found on an empty (meta-device) copy of the model."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    names = {".".join(n.split(".")[-2:]) for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m.in_features % 64}
    return sorted(names)


class QLora:
    name = "qlora"
    config_cls = QLoraConfig
    fit_head = None

    def load_kwargs(self, cfg: QLoraConfig, model_path: str | None = None) -> dict:
        import torch
        from transformers import BitsAndBytesConfig

        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            from llmkit.errors import LlmkitError

            raise LlmkitError("method qlora needs bitsandbytes: pip install 'llmkit[bitsandbytes]'") from None
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        skip = ["lm_head", "pooler"]
        if device == "cpu" and model_path:
            narrow = cpu_unquantisable(model_path)
            if narrow:
                print(f"llmkit: qlora: {len(narrow)} kind(s) of linear layer kept in full precision on CPU (input "
                      f"width not a multiple of 64, which bitsandbytes' CPU kernels need): {', '.join(narrow)}")
            skip += narrow
        return {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.quant_type, bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, cfg.compute_dtype),
            # kept in full precision: the output head, and BERT's pooler (unused by mean pooling,
            # and absent from some checkpoints, which 4-bit loading cannot initialise)
            llm_int8_skip_modules=skip), "device_map": {"": device}}

    def apply(self, model, cfg: QLoraConfig):
        from peft import prepare_model_for_kbit_training

        # Freezes the base, casts norms to fp32; checkpointing is the recipe's choice, not PEFT's.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return wrap(model, peft_lora_config(model, cfg))
