"""A trained llmkit classifier written as a standard Hugging Face sequence-classification model.

    AutoModelForSequenceClassification.from_pretrained("runs/x/model")         # format "transformers"
    PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=C), "runs/x/model")
                                                                                 # format "peft"
    pipeline("text-classification", model="runs/x/model")                       # format "transformers"

transformers' `*ForSequenceClassification` classes fix the pooling per architecture: BERT-like
encoders put a linear layer on the pooler output (the [CLS] state through dense + tanh), decoders a
bias-free linear layer on the last non-padding token. llmkit's `pooling: pooler` and `pooling: last`
are exactly those; `mean` (what sentence encoders such as all-MiniLM-L6-v2 were trained with) and
`cls` have no transformers class. So rather than decide by names which runs can be exported, `export`
builds the transformers model, copies the weights in, and keeps it only if its logits equal
llmkit's on a probe batch; otherwise it returns why not, and the run keeps llmkit's own layout
(`llmkit.models.classifier.load_classifier` reads both).

A PEFT backbone (LoRA, QLoRA, prefix, prompt tuning) is written in PEFT's natural form for this
task: an adapter with task_type SEQ_CLS whose `modules_to_save` holds the head. Other trained
modules (bottleneck adapters) have no place in a transformers class, and the weight copy says so.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from torch import nn

PROBE = ["llmkit checks that the exported model computes what it trained", "a shorter one"]


def export(model, tokenizer, out: Path, *, labels: list[str], base_path: str, load_extra: dict) -> tuple[str, str]:
    """Write `model` (a SequenceClassifier) to `out` in transformers or PEFT form, and keep it only if
    it loads back from disk (as a user loads it) with the same logits.
    -> ("transformers" | "peft", class name), or ("llmkit", why not) with nothing written."""
    fmt = "peft" if getattr(model.backbone, "peft_config", None) else "transformers"
    tmp = out / ".transformers-export"
    try:
        name, why = _write(model, tokenizer, tmp, fmt, labels, base_path, load_extra)
        if why:
            return "llmkit", why
        for f in tmp.iterdir():
            f.replace(out / f.name)
        return fmt, name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(model, tokenizer, tmp: Path, fmt: str, labels, base_path, load_extra) -> tuple[str, str | None]:
    """Build, save to `tmp`, load back and compare: -> (class name, None) or (class name, why not)."""
    hf = _hf_model(model, tokenizer, labels)
    if isinstance(hf, str):
        return "", hf
    name = type(hf).__name__
    if fmt == "peft":
        hf, why = _peft_model(model.backbone, hf)
        if why:
            return name, why
    hf.save_pretrained(tmp, safe_serialization=True)
    meta = {"format": fmt, "labels": labels, "pad_token_id": tokenizer.pad_token_id, "base_model": base_path}
    try:
        return name, _same_logits(model, Loaded(load(tmp, meta, load_extra), model.pooling), tokenizer, name)
    except ValueError as e:  # PEFT: "Model does not support past key values which are required for prefix tuning."
        return name, f"PEFT's {name} cannot run this adapter: {e}"


def _hf_config(inner, tokenizer, labels):
    cfg = copy.deepcopy(inner.config)
    cfg.num_labels = len(labels)
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {label: i for i, label in enumerate(labels)}
    if getattr(cfg, "pad_token_id", None) is None:  # decoders find the last token by it
        cfg.pad_token_id = tokenizer.pad_token_id
    return cfg


def _hf_model(model, tokenizer, labels):
    """The transformers classifier holding the backbone's base weights and the head; or why not."""
    from transformers import AutoModelForSequenceClassification

    backbone = model.backbone
    inner = backbone.get_base_model() if getattr(backbone, "peft_config", None) else backbone
    try:
        hf = AutoModelForSequenceClassification.from_config(_hf_config(inner, tokenizer, labels))
    except ValueError as e:  # no *ForSequenceClassification class for this model type
        return f"transformers has no sequence-classification model for it ({str(e).splitlines()[0]})"
    ref = next(inner.parameters())
    hf.to(device=ref.device, dtype=ref.dtype)
    # a LoRA-wrapped layer keeps its frozen weight as `<layer>.base_layer.weight`; the adapter goes in next
    state = {k.replace(".base_layer.", "."): v for k, v in inner.state_dict().items() if ".lora_" not in k}
    try:
        missing, unexpected = getattr(hf, hf.base_model_prefix).load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ: a quantised base (QLoRA) holds packed 4-bit weights
        return f"its weights do not fit transformers' {type(hf).__name__} ({str(e).splitlines()[-1].strip()})"
    if unexpected:
        return (f"{len(unexpected)} trained tensors have no place in transformers' {type(hf).__name__} "
                f"(first: `{unexpected[0]}`): the method adds modules of llmkit's own")
    if missing:
        return f"transformers' {type(hf).__name__} expects tensors the backbone lacks (first: `{missing[0]}`)"
    return _copy_head(model.head, hf) or hf


def _head(hf) -> tuple[list[str], list[nn.Module]]:
    """The one module of a transformers classifier outside its base model, by the parameters it holds."""
    prefix = hf.base_model_prefix + "."
    names = sorted({n.rsplit(".", 1)[0] for n, _ in hf.named_parameters() if not n.startswith(prefix)})
    return names, [hf.get_submodule(n) for n in names]


def _copy_head(head: nn.Linear, hf) -> str | None:
    """Copy llmkit's linear head into the transformers one; None, or why they differ in shape."""
    names, modules = _head(hf)
    ours = "with" if head.bias is not None else "without"
    if len(modules) != 1 or not isinstance(modules[0], nn.Linear) or \
            modules[0].weight.shape != head.weight.shape or (modules[0].bias is None) != (head.bias is None):
        return (f"transformers' {type(hf).__name__} puts {', '.join(f'`{n}`' for n in names)} on the backbone; "
                f"llmkit's head is one linear layer {ours} bias")
    with torch.no_grad():
        modules[0].weight.copy_(head.weight)
        if head.bias is not None:
            modules[0].bias.copy_(head.bias)
    return None


def _peft_model(backbone, hf):
    """`backbone`'s adapter on `hf` as a SEQ_CLS PEFT model whose modules_to_save is the head."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    cfg = copy.deepcopy(backbone.peft_config["default"])
    cfg.task_type = "SEQ_CLS"
    cfg.modules_to_save = _head(hf)[0]
    pm = get_peft_model(hf, cfg)
    # LoRA keys name modules under the bare backbone; in the classifier they sit under its prefix
    here, there = "base_model.model.", f"base_model.model.{hf.base_model_prefix}."
    state = get_peft_model_state_dict(pm)  # the head, copied in before wrapping, stays as it is
    state.update({(there + k[len(here):] if k.startswith(here) else k): v
                  for k, v in get_peft_model_state_dict(backbone).items()})
    result = set_peft_model_state_dict(pm, state)
    # PEFT loads a prompt-learning method's `prompt_embeddings` itself, after reporting it unexpected
    unexpected = [k for k in result.unexpected_keys if k != "prompt_embeddings"]
    if unexpected:
        return None, f"PEFT's {type(pm).__name__} has no place for `{unexpected[0]}`"
    return pm, None


@torch.no_grad()
def _same_logits(model, loaded, tokenizer, name: str) -> str | None:
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    loaded.to(dev)
    enc = tokenizer(PROBE, padding=True, return_tensors="pt").to(dev)
    ours = model(enc["input_ids"], enc["attention_mask"]).float()
    theirs = loaded(enc["input_ids"], enc["attention_mask"]).float()
    model.train(was_training)
    diff = (ours - theirs).abs().max().item()
    if diff > 1e-4 * max(1.0, ours.abs().max().item()):
        return (f"transformers' {name}, loaded back, computes other logits than pooling={model.pooling!r} "
                f"(by {diff:.3g} on a probe batch); its own pooling is `pooler` on BERT-like encoders, "
                f"`last` on decoders, and a soft prompt moves a decoder's last token out of its sight")
    return None


def load(model_dir: Path, meta: dict, load_extra: dict):
    """The transformers or PEFT classifier saved by `export`, for llmkit's loader."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    from llmkit.models.loading import resolve_model, unpickled

    if meta["format"] == "transformers":
        with unpickled(model_dir):
            return AutoModelForSequenceClassification.from_pretrained(model_dir)
    from peft import PeftModel

    info = json.loads((model_dir / "adapter_config.json").read_text())
    base_path = resolve_model(info.get("base_model_name_or_path") or meta["base_model"])
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "newly initialized: classifier": the adapter's modules_to_save holds it
    labels = meta["labels"]
    with unpickled(base_path):
        base = AutoModelForSequenceClassification.from_pretrained(
            base_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, **load_extra)
    logging.set_verbosity(verbosity)
    if meta.get("pad_token_id") is not None:
        base.config.pad_token_id = meta["pad_token_id"]
    return PeftModel.from_pretrained(base, model_dir)


class Loaded(nn.Module):
    """A transformers / PEFT classifier called as llmkit's SequenceClassifier: (ids, mask) -> logits."""

    def __init__(self, hf, pooling: str):
        super().__init__()
        self.hf, self.pooling = hf, pooling

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, C)
