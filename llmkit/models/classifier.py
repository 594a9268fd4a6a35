"""A sequence classifier: any Hugging Face backbone + pooling + a linear head.

Why not `AutoModelForSequenceClassification`: its pooling is fixed per architecture (BERT uses the
[CLS] token through a pooler that sentence encoders such as all-MiniLM-L6-v2 never trained; they
were trained with mean pooling), and its head layout differs per model. One small module with a
`pooling` choice gives every method (feature-based, finetune I/II, LoRA, adapters, prefix) the same
model on encoders and decoders alike.

`pooling: pooler` (BERT-like encoders) and `pooling: last` (decoders, with a bias-free head) are
what transformers' `*ForSequenceClassification` classes compute, so those runs are saved as one
(see llmkit/models/hf_classifier.py): `AutoModelForSequenceClassification.from_pretrained(dir)`
and `pipeline("text-classification", model=dir)` load them, or PEFT for a PEFT method.

Saved layout (`output_dir/model/`), always:
    classifier.json     labels, pooling, max_length, base model name, `format` (and why not HF)
    tokenizer files
format "transformers": config.json + model.safetensors (the whole sequence-classification model)
format "peft":         adapter_config.json + adapter_model.safetensors (task SEQ_CLS, the head in
                       modules_to_save), on the base model named there
format "llmkit" (mean or cls pooling, bottleneck adapters):
    head.safetensors    the linear head
    backbone/           only when backbone weights were trained: a full HF model, or a PEFT
                        adapter directory; otherwise the base model named in classifier.json is used
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

POOLINGS = ("mean", "cls", "last", "pooler")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, H) hidden states, (B, T) attention mask -> (B, H). (`pooler` is the backbone's own.)"""
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        # Last non-padding token, for left or right padding alike.
        idx = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (idx * mask).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {how!r}")


class SequenceClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        if pooling == "pooler" and getattr(backbone, "pooler", None) is None:
            from llmkit.errors import ConfigError

            raise ConfigError(f"model.pooling=pooler: {type(backbone).__name__} has no pooler (a BERT-like "
                              f"encoder has one; for a decoder use model.pooling=last)")
        # bias-free on the last token, as transformers' decoder classifiers (LlamaForSequenceClassification)
        self.head = nn.Linear(hidden, num_labels, bias=pooling != "last")  # (H -> C)

    def embed(self, input_ids, attention_mask) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            return out.pooler_output  # (B, H): [CLS] through the pretrained dense + tanh
        hidden = out.last_hidden_state  # (B, T', H)
        extra = hidden.shape[1] - attention_mask.shape[1]
        if extra > 0:  # soft prompt tuning prepends `extra` virtual tokens; they count as content
            attention_mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], extra), attention_mask], 1)
        return pool(hidden, attention_mask, self.pooling)  # (B, H)

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))  # (B, C) logits

    def backbone_trains(self) -> bool:
        return any(p.requires_grad for p in self.backbone.parameters())


def save_classifier(model: SequenceClassifier, tokenizer, out_dir: str | Path, *, labels: list[str],
                    base_model: str, max_length: int, method: str, method_config: dict | None = None) -> Path:
    """Write the classifier as a transformers / PEFT model where one computes the same logits, else in
    llmkit's layout (module docstring); classifier.json says which, and why not transformers."""
    from llmkit.methods import get_method, load_kwargs
    from llmkit.models import hf_classifier
    from llmkit.models.loading import resolve_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_path = resolve_model(base_model)
    extra = load_kwargs(method, get_method(method).config_cls(**(method_config or {})), base_path)
    fmt, detail = hf_classifier.export(model, tokenizer, out, labels=labels, base_path=base_path, load_extra=extra)
    if fmt == "llmkit":
        _save_llmkit_layout(model, out, method, base_model)
    tokenizer.save_pretrained(out)
    meta = {"labels": labels, "pooling": model.pooling, "max_length": max_length, "method": method,
            "method_config": method_config or {},
            "base_model": base_model, "backbone_saved": fmt != "llmkit" or model.backbone_trains(),
            "format": fmt, "pad_token_id": tokenizer.pad_token_id,
            **({"why_not_transformers": detail} if fmt == "llmkit" else {"transformers_class": detail})}
    (out / "classifier.json").write_text(json.dumps(meta, indent=2))
    return out


def _save_llmkit_layout(model: SequenceClassifier, out: Path, method: str, base_model: str) -> None:
    from safetensors.torch import save_file

    from llmkit.methods import save_trained

    save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
              str(out / "head.safetensors"))
    if model.backbone_trains():  # else the base model named in classifier.json is the backbone
        save_trained(method, model.backbone, out / "backbone", base_model=base_model)


def load_classifier(model_dir: str | Path):
    """-> (classifier in eval mode: (ids, mask) -> logits, tokenizer, meta), in any of the three
    formats. Loads in one process, on CPU."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from llmkit.methods import get_method, load_kwargs, load_trained
    from llmkit.models import hf_classifier
    from llmkit.models.loading import resolve_model

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "classifier.json").read_text())
    method = get_method(meta["method"])
    method_cfg = method.config_cls(**meta.get("method_config", {}))
    # QLoRA's base loads quantised again, so the reloaded model computes what the trained one did
    base_path = resolve_model(meta["base_model"])
    extra = load_kwargs(meta["method"], method_cfg, base_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if meta.get("format", "llmkit") != "llmkit":
        model = hf_classifier.Loaded(hf_classifier.load(model_dir, meta, extra), meta["pooling"])
        return model.eval(), tokenizer, meta
    backbone = AutoModel.from_pretrained(base_path, **extra)
    if meta["backbone_saved"]:
        backbone = load_trained(meta["method"], backbone, model_dir / "backbone")
    model = SequenceClassifier(backbone, len(meta["labels"]), meta["pooling"])
    model.head.load_state_dict(load_file(str(model_dir / "head.safetensors")))
    return model.eval(), tokenizer, meta


class Collator:
    """(text or (text, pair), label) items -> padded tensors."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, batch):
        texts, labels = zip(*batch)
        args = [list(x) for x in zip(*texts)] if isinstance(texts[0], tuple) else [list(texts)]
        enc = self.tokenizer(*args, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": torch.tensor(labels)}


@torch.no_grad()
def predict(model: SequenceClassifier, tokenizer, texts: list, max_length: int, batch_size: int = 64) -> list[int]:
    """Predicted label ids for `texts` (strings or (text, pair) tuples), batched, eval mode."""
    model.eval()
    collate = Collator(tokenizer, max_length)
    dev = next(model.parameters()).device
    preds = []
    for i in range(0, len(texts), batch_size):
        b = collate([(t, 0) for t in texts[i:i + batch_size]])
        preds += model(b["input_ids"].to(dev), b["attention_mask"].to(dev)).argmax(-1).tolist()
    return preds
