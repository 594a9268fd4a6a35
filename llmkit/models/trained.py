"""Load what a run saved, for generation or merging: a full Hugging Face model directory, a PEFT
adapter directory (LoRA, QLoRA, prefix, prompt), llmkit's bottleneck-adapter directory, or a base
model by name. Adapter directories name their base model, so one path is enough.

    model, tokenizer = load_causal(path)             # base + adapter, or a full model
    merge(path, "out/merged")                        # LoRA folded into the weights
"""

from __future__ import annotations

import json
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.tracking import check_output_dir


def adapter_info(path: Path) -> dict | None:
    cfg = path / "adapter_config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise LlmkitError(f"{cfg}: not valid JSON ({e.msg})") from None


def _base_name(info: dict, path: Path) -> str:
    base = info.get("base_model") or info.get("base_model_name_or_path")
    if not base:
        raise LlmkitError(f"{path}/adapter_config.json does not name its base model")
    return base


def load_causal(name_or_path: str, *, base: str | None = None, revision: str | None = None,
                trust_remote_code: bool = False, dtype: str | None = None):
    """-> (model in eval mode, tokenizer) for a full model, an adapter directory or a model name.
    `revision` applies to a hub id (the model's, or an adapter's base), `dtype` to the weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.models.loading import resolve_model, unpickled

    kwargs = {"trust_remote_code": trust_remote_code, **({"dtype": getattr(torch, dtype)} if dtype else {})}
    path = Path(name_or_path)
    info = adapter_info(path) if path.is_dir() else None
    if info is None:
        model_path = resolve_model(name_or_path, revision)
        extra = {"revision": revision} if revision and model_path == name_or_path else {}
        with unpickled(model_path):
            model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs, **extra)
        tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code, **extra)
    else:
        base_name = base or _base_name(info, path)
        base_path = resolve_model(base_name, revision)
        extra = {"revision": revision} if revision and base_path == base_name else {}
        with unpickled(base_path):
            model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs, **extra)
        if info.get("llmkit_method") == "adapter":
            from llmkit.methods.bottleneck import load_adapter

            model = load_adapter(model, path)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, path)
        tok_dir = path if (path / "tokenizer_config.json").is_file() else base_path
        tok = AutoTokenizer.from_pretrained(tok_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


def merge(adapter_dir: str | Path, output: str | Path, *, base: str | None = None) -> Path:
    """Fold a LoRA adapter into its base weights and save a standalone model (safetensors)."""
    from peft import PeftModel
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from llmkit.models.loading import resolve_model

    path = Path(adapter_dir)
    check_output_dir(output, inputs=[path, *([path.parent] if (path.parent / "metrics.json").is_file() else [])])
    if (path / "classifier.json").is_file():
        return _merge_classifier(path, Path(output))
    info = adapter_info(path)
    if info is None:
        raise LlmkitError(f"{path} holds no adapter_config.json: not an adapter directory (a full model needs no merge)")
    kind = info.get("llmkit_method") or info.get("peft_type")
    if kind == "adapter":
        raise LlmkitError(f"{path}: bottleneck adapters cannot be merged into the base weights (the non-linearity "
                          f"between their two projections has no linear equivalent); load them with "
                          f"llmkit.methods.adapter.load_adapter, or `llmkit sample {path}`")
    if kind != "LORA":
        raise LlmkitError(f"{path}: a {kind} adapter cannot be merged (it adds tokens or key/values, not weight "
                          f"updates); load it with peft.PeftModel.from_pretrained, or `llmkit sample {path}`")
    base_path = resolve_model(base or _base_name(info, path))
    auto = AutoModelForCausalLM if info.get("task_type") == "CAUSAL_LM" else AutoModel
    merged = PeftModel.from_pretrained(auto.from_pretrained(base_path), path).merge_and_unload()
    out = Path(output)
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(path if (path / "tokenizer_config.json").is_file() else base_path).save_pretrained(out)
    return out


def _merge_classifier(model_dir: Path, out: Path) -> Path:
    """A classify run's model/ with a LoRA backbone -> the same classifier with merged weights: a
    transformers sequence-classification model from the PEFT format, llmkit's layout from its own."""
    import shutil

    meta = json.loads((model_dir / "classifier.json").read_text())
    fmt = meta.get("format", "llmkit")
    if fmt == "transformers" or (fmt == "llmkit" and not meta.get("backbone_saved")):
        raise LlmkitError(f"{model_dir}: the backbone holds no adapter (its weights are plain); there is nothing to merge")
    if fmt == "peft":
        return _merge_peft_classifier(model_dir, out, meta)
    backbone_dir = model_dir / "backbone"
    info = adapter_info(backbone_dir)
    if info is None:
        raise LlmkitError(f"{model_dir}: the backbone is already a full model; nothing to merge")
    shutil.copytree(model_dir, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("backbone"))
    merge(backbone_dir, out / "backbone", base=meta["base_model"])
    meta["method"], meta["method_config"] = "full", {}
    (out / "classifier.json").write_text(json.dumps(meta, indent=2))
    return out


def _merge_peft_classifier(model_dir: Path, out: Path, meta: dict) -> Path:
    from transformers import AutoTokenizer

    from llmkit.models import hf_classifier

    info = adapter_info(model_dir)
    if info.get("peft_type") != "LORA":
        raise LlmkitError(f"{model_dir}: a {info.get('peft_type')} adapter cannot be merged (it adds tokens, not "
                          f"weight updates); load it with peft.PeftModel.from_pretrained")
    merged = hf_classifier.load(model_dir, meta, {}).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    meta.update(method="full", method_config={}, format="transformers", backbone_saved=True)
    (out / "classifier.json").write_text(json.dumps(meta, indent=2))
    return out
