"""`llmkit merge` (LoRA folded into the weights: same logits) and `llmkit sample` (batch generation)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmkit.config import ModelConfig
from llmkit.errors import LlmkitError
from llmkit.methods import get_method, save_trained
from llmkit.models.loading import load_causal_lm, load_tokenizer, resolve_model
from llmkit.models.trained import load_causal, merge


def trained_adapter(method_name, out, **kw):
    cfg = ModelConfig(name="tiny-llama")
    method = get_method(method_name)
    torch.manual_seed(0)
    model = method.apply(load_causal_lm(cfg), method.config_cls(**kw))
    with torch.no_grad():  # stand-in for training: move every trainable tensor off its initial value
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    save_trained(method_name, model, out, base_model="tiny-llama")
    load_tokenizer(cfg).save_pretrained(out)
    return model.eval()


def test_merged_lora_logits_equal_unmerged(tmp_path):
    model = trained_adapter("lora", tmp_path / "adapter", r=4)
    merged_dir = merge(tmp_path / "adapter", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    ids = torch.randint(3, 400, (2, 12))
    with torch.no_grad():
        want = model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama"))(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_merge_classifier_lora(tmp_path, run_cli):
    from llmkit.models.classifier import load_classifier, predict

    out = tmp_path / "run"
    res = run_cli("train", "recipes/classify/lora.yaml", "model=tiny-bert", "data.max_train_samples=64",
                  "data.max_test_samples=16", "train.max_steps=4", "train.batch_size=16", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli("merge", out / "model", "--output", tmp_path / "merged")
    assert res.returncode == 0, res.stderr[-2000:]
    a, tok, _ = load_classifier(out / "model")
    b, _, meta = load_classifier(tmp_path / "merged")
    assert meta["method"] == "full"
    enc = tok(["a short review", "another, longer review text"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(b(enc["input_ids"], enc["attention_mask"]), a(enc["input_ids"], enc["attention_mask"]), rtol=0, atol=1e-5)
    assert predict(a, tok, ["x y"], 32) == predict(b, tok, ["x y"], 32)


@pytest.mark.parametrize("method_name, kw, needle", [
    ("adapter", {"bottleneck": 8}, "bottleneck adapters cannot be merged"),
    ("prefix", {"num_virtual_tokens": 4}, "PREFIX_TUNING adapter cannot be merged"),
])
def test_merge_refuses_what_cannot_merge(tmp_path, method_name, kw, needle):
    trained_adapter(method_name, tmp_path / "a", **kw)
    with pytest.raises(LlmkitError, match=needle):
        merge(tmp_path / "a", tmp_path / "m")


def test_merge_never_writes_into_the_adapter_or_its_run(tmp_path):
    run = tmp_path / "run"
    trained_adapter("lora", run / "model", r=4)
    (run / "metrics.json").write_text("{}")
    before = sorted(p.name for p in (run / "model").iterdir())
    for target, needle in ((run / "model", "is the input"), (run / "model" / "merged", "lies inside the input"),
                           (run, "holds the input"), (run / "merged", "lies inside the input"), (tmp_path, "holds the input")):
        with pytest.raises(LlmkitError, match=needle):
            merge(run / "model", target)
    assert sorted(p.name for p in (run / "model").iterdir()) == before and not (run / "merged").exists()


def test_sample_adapter_and_merged_agree(tmp_path, run_cli):
    trained_adapter("lora", tmp_path / "adapter", r=4)
    merge(tmp_path / "adapter", tmp_path / "merged")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "What is 2 plus 2?"}]}) + "\n"
                       + json.dumps({"prompt": "Once upon a time"}) + "\n")
    outs = {}
    for name in ("adapter", "merged"):
        res = run_cli("sample", tmp_path / name, "--prompts", prompts, "--output", tmp_path / f"{name}.jsonl", "--max-new-tokens", "6")
        assert res.returncode == 0, res.stderr[-2000:]
        outs[name] = [json.loads(x)["output"] for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert len(outs["adapter"]) == 2 and outs["adapter"] == outs["merged"]
    model, tok = load_causal(str(tmp_path / "adapter"))
    assert type(model).__name__.startswith("Peft")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    res = run_cli("sample", tmp_path / "adapter", "--prompts", bad, "--output", tmp_path / "o.jsonl")
    assert res.returncode == 2 and "bad.jsonl: line 1: needs a `prompt`" in res.stderr


@pytest.mark.parametrize("case", ["batch0", "tokens0", "nan", "negative", "directory", "prompts", "exists"])
def test_sample_refuses_bad_arguments_before_loading_the_model(case, tmp_path, run_cli):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"accuracy": 0.9}\n')
    out, extra = tmp_path / "o.jsonl", []
    expected = {"batch0": "--batch-size must be >= 1, got 0", "tokens0": "--max-new-tokens must be >= 1, got 0",
                "nan": "--temperature must be a finite number >= 0", "negative": "--temperature must be a finite number",
                "directory": "is a directory", "prompts": "is the prompts file", "exists": "already exists"}[case]
    if case == "batch0":
        extra = ["--batch-size", "0"]
    elif case == "tokens0":
        extra = ["--max-new-tokens", "0"]
    elif case in ("nan", "negative"):
        extra = ["--temperature", "nan" if case == "nan" else "-1"]
    elif case == "directory":
        out = run_dir
    elif case == "prompts":
        out, extra = prompts, ["--overwrite"]  # not even with --overwrite
    else:
        out = run_dir / "metrics.json"
    res = run_cli("sample", "no/such-model", "--prompts", prompts, "--output", out, *extra)
    assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert (run_dir / "metrics.json").read_text() == '{"accuracy": 0.9}\n' and prompts.read_text() == '{"prompt": "hi"}\n'


def test_text_prompts_go_through_the_models_own_chat_template_unless_raw():
    from llmkit.config import ModelConfig
    from llmkit.models.loading import load_tokenizer
    from llmkit.sample import prompt_ids

    messages = [{"role": "user", "content": "hi"}]
    base = load_tokenizer(ModelConfig(name="tiny-llama"))  # no template: a text prompt is continued as it is
    assert prompt_ids(base, ["hi there"]) == [base("hi there")["input_ids"]]
    chat = load_tokenizer(ModelConfig(name="tiny-llama"))
    chat.chat_template = "{% for m in messages %}<u>{{ m['content'] }}</u>{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    templated = chat("<u>hi there</u>A:")["input_ids"]
    assert prompt_ids(chat, ["hi there", messages]) == [templated, chat("<u>hi</u>A:")["input_ids"]]
    # raw: the text as it is; messages still templated
    assert prompt_ids(chat, ["hi there", messages], raw=True) == [chat("hi there")["input_ids"], chat("<u>hi</u>A:")["input_ids"]]
