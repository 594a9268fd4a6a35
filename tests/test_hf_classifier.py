"""Classify outputs as Hugging Face models: where transformers' *ForSequenceClassification computes
what llmkit trained, the run's model/ loads with plain transformers / PEFT and runs in
`pipeline("text-classification")`; where it cannot, classifier.json says why and llmkit's loader reads it."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline

from llmkit.config import ModelConfig
from llmkit.methods import get_method, load_kwargs
from llmkit.models.classifier import SequenceClassifier, load_classifier, save_classifier
from llmkit.models.loading import load_backbone, load_tokenizer, resolve_model

LABELS = ["neg", "pos", "mixed"]
TEXTS = ["a good day", "the food was cold and the waiter, rude, never came back"]
CASES = [  # arch, pooling, method, method kwargs, the format it must be saved in
    ("bert", "pooler", "full", {}, "transformers"),
    ("bert", "pooler", "feature_based", {}, "transformers"),
    ("gpt2", "last", "full", {}, "transformers"),
    ("llama", "last", "last_layers", {"trainable_layers": 1}, "transformers"),
    ("bert", "pooler", "lora", {"r": 4}, "peft"),
    ("llama", "last", "lora", {"r": 4}, "peft"),
    ("bert", "pooler", "prompt", {"num_virtual_tokens": 4}, "peft"),
    # no transformers class computes these; each says why
    ("bert", "mean", "full", {}, "llmkit"),
    ("bert", "cls", "lora", {"r": 4}, "llmkit"),
    ("llama", "last", "prompt", {"num_virtual_tokens": 4}, "llmkit"),  # HF's last token is then a guess
    ("bert", "pooler", "prefix", {"num_virtual_tokens": 4}, "llmkit"),  # PEFT seq-cls prefix: no past key values
    ("bert", "pooler", "adapter", {"bottleneck": 8}, "llmkit"),  # llmkit's own modules
    ("llama", "last", "qlora", {"r": 4}, "llmkit"),  # the base is quantised
]
WHY = {"mean": "pools differently|other logits", "cls": "other logits", "prompt": "other logits",
       "prefix": "past key values", "adapter": "no place", "qlora": "do not fit"}


def trained(arch, pooling, method_name, kw):
    cfg = ModelConfig(name=f"tiny-{arch}")
    method = get_method(method_name)
    mcfg = method.config_cls(**kw)
    backbone = method.apply(load_backbone(cfg, **load_kwargs(method_name, mcfg)), mcfg)
    torch.manual_seed(0)
    model = SequenceClassifier(backbone, len(LABELS), pooling)
    with torch.no_grad():  # "training": every trainable tensor moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval(), load_tokenizer(cfg)


def logits(model, tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(enc["input_ids"], enc["attention_mask"])


@pytest.mark.parametrize("arch, pooling, method_name, kw, fmt", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_saved_format_loads_with_plain_libraries(tmp_path, arch, pooling, method_name, kw, fmt):
    model, tok = trained(arch, pooling, method_name, kw)
    want = logits(model, tok)
    out = save_classifier(model, tok, tmp_path / "m", labels=LABELS, base_model=f"tiny-{arch}", max_length=32,
                          method=method_name, method_config=kw)
    meta = json.loads((out / "classifier.json").read_text())
    assert meta["format"] == fmt, meta.get("why_not_transformers")
    assert not (out / ".transformers-export").exists()
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    if fmt == "transformers":
        hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
        assert hf.config.id2label == dict(enumerate(LABELS))
        assert not (out / "head.safetensors").exists()
    elif fmt == "peft":
        from peft import PeftModel

        adapter = json.loads((out / "adapter_config.json").read_text())
        assert adapter["task_type"] == "SEQ_CLS"
        assert ("classifier" if arch == "bert" else "score") in adapter["modules_to_save"]  # the head travels with it
        base = AutoModelForSequenceClassification.from_pretrained(resolve_model(f"tiny-{arch}"), num_labels=len(LABELS))
        base.config.pad_token_id = tok.pad_token_id
        hf = PeftModel.from_pretrained(base, out).eval()
    if fmt != "llmkit":
        with torch.no_grad():
            got = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    else:
        import re

        assert re.search(WHY[pooling if pooling in WHY else method_name], meta["why_not_transformers"])
        assert (out / "head.safetensors").is_file() and not (out / "config.json").exists()
    loaded, _, meta2 = load_classifier(out)  # llmkit's loader reads every format
    torch.testing.assert_close(logits(loaded, tok), want, rtol=0, atol=1e-5)


def test_pooler_needs_an_encoder_with_one(run_cli, tmp_path):
    res = run_cli("train", "recipes/classify/finetune_all.yaml", "model=tiny-llama", "model.pooling=pooler",
                  "data.max_train_samples=16", f"output_dir={tmp_path / 'run'}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "model.pooling=pooler: LlamaModel has no pooler" in res.stderr and "model.pooling=last" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def train_classifier(run_cli, out, recipe, *overrides) -> dict:
    """`llmkit train recipes/classify/<recipe>.yaml` on a few rows -> the run's classifier.json."""
    res = run_cli("train", f"recipes/classify/{recipe}.yaml", "data.max_train_samples=32", "data.max_test_samples=8",
                  "train.batch_size=16", *overrides, f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "model" / "classifier.json").read_text())


def test_cli_lora_run_is_a_peft_model_and_merges_into_a_pipeline(run_cli, tmp_path):
    """The README's path: train with pooling=pooler, load the adapter with PEFT, merge, then
    pipeline("text-classification") on the merged directory gives llmkit's predictions by label name."""
    out = tmp_path / "run"
    meta = train_classifier(run_cli, out, "lora", "model=tiny-bert", "model.pooling=pooler", "train.max_steps=3")
    assert meta["format"] == "peft" and (out / "model" / "adapter_model.safetensors").is_file()
    res = run_cli("merge", out / "model", "--output", tmp_path / "merged")
    assert res.returncode == 0, res.stderr[-2000:]
    ours, tok, _ = load_classifier(out / "model")
    texts = ["a short review", "another, longer review text with more words"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = ours(enc["input_ids"], enc["attention_mask"])
    clf = pipeline("text-classification", model=str(tmp_path / "merged"))
    got = clf(texts, top_k=None)
    labels = meta["labels"]
    for row, scores in zip(want.softmax(-1), got):
        by_name = {s["label"]: s["score"] for s in scores}
        assert set(by_name) == set(labels)
        torch.testing.assert_close(torch.tensor([by_name[n] for n in labels]), row, rtol=0, atol=1e-5)
    res = run_cli("merge", tmp_path / "merged", "--output", tmp_path / "again")
    assert res.returncode == 2 and "nothing to merge" in res.stderr


def test_cli_decoder_run_is_a_transformers_model(run_cli, tmp_path):
    out = tmp_path / "run"
    meta = train_classifier(run_cli, out, "finetune_all", "model=tiny-llama", "model.pooling=last", "train.max_steps=2")
    assert (meta["format"], meta["transformers_class"]) == ("transformers", "LlamaForSequenceClassification")
    got = pipeline("text-classification", model=str(out / "model"))(["x y z"])
    assert got[0]["label"] in meta["labels"]
