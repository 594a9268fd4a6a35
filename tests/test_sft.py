"""The sft recipe: data formats and loss masks, every method's recipe end to end on a tiny Llama,
prefix tuning with gradient checkpointing, saved adapters that load (resume after a kill: tests/test_kill_resume.py)."""

import json

import pytest
from conftest import ROOT

from llmkit.config import ModelConfig
from llmkit.data.sft import (
    DEFAULT_CHAT_TEMPLATE,
    SFTDataConfig,
    generation_prompt,
    prepare,
    tokenize,
)
from llmkit.errors import DataError
from llmkit.models.loading import load_tokenizer

SFT_RECIPES = sorted((ROOT / "recipes" / "sft").glob("*.yaml"))
SMOKE = ["model=tiny-llama", "data.max_train_samples=32", "data.max_test_samples=8", "train.max_steps=3",
         "train.batch_size=8", "eval.num_generate=4", "eval.max_new_tokens=4", "train.logging_steps=1"]


@pytest.fixture(scope="module")
def tok():
    t = load_tokenizer(ModelConfig(name="tiny-llama"))
    t.chat_template = DEFAULT_CHAT_TEMPLATE
    return t


def trained_text(tok, example):
    return tok.decode([i for i, lab in zip(example["input_ids"], example["labels"]) if lab != -100])


def test_messages_loss_on_assistant_turns_only(tok):
    rec = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3."},
                        {"role": "assistant", "content": "5"}, {"role": "user", "content": "Double it."},
                        {"role": "assistant", "content": "10"}]}
    ex = tokenize(rec, tok, 256)
    assert trained_text(tok, ex) == f"5{tok.eos_token}10{tok.eos_token}"
    assert tokenize(rec, tok, 256, loss_on="all")["labels"] == ex["input_ids"]
    prompt, ref = generation_prompt(rec, tok)
    assert ref == "10" and tok.decode(prompt).endswith("Double it.\n<|assistant|>\n")


def test_prompt_completion_and_text(tok):
    ex = tokenize({"prompt": "Reverse abc:", "completion": " cba"}, tok, 256)
    assert trained_text(tok, ex) == f" cba{tok.eos_token}"
    assert ex["input_ids"][-1] == tok.eos_token_id  # EOS appended so generation learns to stop
    ex = tokenize({"text": "plain text here"}, tok, 256)
    assert all(lab != -100 for lab in ex["labels"]) and ex["input_ids"][-1] == tok.eos_token_id
    assert len(tokenize({"text": "word " * 500}, tok, 16)["input_ids"]) == 16


def test_formats_detected_and_bad_rows_named(write_jsonl):
    msgs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    assert prepare(SFTDataConfig(path=str(write_jsonl("m.jsonl", msgs)))).format == "messages"
    pc = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)]
    assert prepare(SFTDataConfig(path=str(write_jsonl("pc.jsonl", pc)))).format == "prompt_completion"
    assert prepare(SFTDataConfig(path=str(write_jsonl("t.jsonl", [{"text": f"t{i}"} for i in range(20)])))).format == "text"
    bad = msgs[:4] + [{"messages": [{"role": "user", "content": "no answer"}]}] + msgs[5:]
    path = write_jsonl("bad.jsonl", bad)
    with pytest.raises(DataError, match=r"bad.jsonl: row 5: no assistant message"):
        prepare(SFTDataConfig(path=str(path)))
    bad = pc[:2] + [{"prompt": "q", "completion": "  "}] + pc[3:]
    with pytest.raises(DataError, match=r"row 3: empty or missing completion"):
        prepare(SFTDataConfig(path=str(write_jsonl("bad2.jsonl", bad))))
    bad = msgs[:1] + [{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    with pytest.raises(DataError, match=r"row 2: message 1 has role 'robot'"):
        prepare(SFTDataConfig(path=str(write_jsonl("bad3.jsonl", bad))))
    with pytest.raises(DataError, match="cannot tell the format"):
        prepare(SFTDataConfig(path=str(write_jsonl("odd.jsonl", [{"q": "x"}] * 3))))


def test_extra_train_files_join_the_training_rows_only(write_jsonl):
    msgs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    extra = [{"messages": [{"role": "user", "content": f"x{i}"}, {"role": "assistant", "content": f"y{i}"}]} for i in range(3)]
    base = prepare(SFTDataConfig(path=str(write_jsonl("m.jsonl", msgs)), max_train_samples=10))
    both = prepare(SFTDataConfig(path=str(write_jsonl("m.jsonl", msgs)), max_train_samples=10,
                                 extra_train=[str(write_jsonl("gen.jsonl", extra))]))
    assert both.train == base.train + [{"messages": e["messages"]} for e in extra] and both.test == base.test
    assert "gen.jsonl (3 rows)" in both.train_source
    pc = [{"prompt": "q", "completion": "a"}]
    mixed = prepare(SFTDataConfig(path=str(write_jsonl("m.jsonl", msgs)), extra_train=[str(write_jsonl("pc.jsonl", pc))]))
    assert mixed.train[-1] == pc[0] and mixed.format == "messages+prompt_completion"  # each file in its own format
    bad = extra[:1] + [{"messages": [{"role": "user", "content": "no answer"}]}]
    with pytest.raises(DataError, match=r"bad.jsonl: row 2: no assistant message"):
        prepare(SFTDataConfig(path=str(write_jsonl("m.jsonl", msgs)), extra_train=[str(write_jsonl("bad.jsonl", bad))]))


def test_bundled_instructions_load():
    data = prepare(SFTDataConfig())
    assert data.format == "messages" and len(data.train) >= 1000 and len(data.test) >= 100


@pytest.mark.parametrize("path", SFT_RECIPES, ids=lambda p: p.stem)
def test_sft_recipe_smoke_run(path, tmp_path, run_cli):
    out = tmp_path / "run"
    res = run_cli("train", path, *SMOKE, f"output_dir={out}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    for name in ("config.yaml", "metrics.json", "history.jsonl", "report.md", "loss.png", "generations.jsonl"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("train_loss", "eval_loss", "eval_exact_match", "base_eval_loss", "trainable_params", "total_params",
                "tokens_per_second", "peak_memory_mb", "train_seconds"):
        assert m.get(key) is not None, key
    assert m["optimizer_steps"] == 3 and m["tokens_per_second"] > 0
    assert len((out / "history.jsonl").read_text().splitlines()) == 3
    method = path.stem
    model_dir = out / "model"
    from transformers import AutoModelForCausalLM

    from llmkit.models.loading import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama"))
    if method in ("lora", "qlora", "prefix", "prompt"):
        from peft import PeftModel

        assert (model_dir / "adapter_config.json").is_file()
        PeftModel.from_pretrained(base, model_dir)  # loads with PEFT alone
    elif method == "adapter":
        from llmkit.methods.bottleneck import load_adapter

        load_adapter(base, model_dir)
    else:
        assert (model_dir / "model.safetensors").is_file()


def test_prefix_tuning_with_gradient_checkpointing_trains_and_generates(tmp_path, run_cli):
    """TRL's SFTConfig checkpoints by default; with it, PEFT prefix tuning on Llama failed with a tensor
    size mismatch. llmkit turns checkpointing off for prefix tuning, says so, and trains."""
    out = tmp_path / "prefix"
    res = run_cli("train", ROOT / "recipes/sft/prefix.yaml", *SMOKE, "train.gradient_checkpointing=true", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "gradient checkpointing turned off" in res.stdout + res.stderr
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 4 and all(isinstance(g["finetuned"], str) for g in gens)
    from safetensors.torch import load_file

    saved = load_file(str(out / "model" / "adapter_model.safetensors"))
    assert saved and all(t.abs().sum() > 0 for t in saved.values())


@pytest.mark.parametrize("method,packing", [("lora", False), ("lora", True), ("prompt", False), ("prefix", False),
                                            ("full", False)])
def test_lean_trainer_loss_equals_trls(tok, method, packing):
    """llmkit's default trainer skips TRL's per-token metrics and the logits of unlabelled positions
    for speed; its loss and gradients must stay TRL's."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig as TRLConfig

    from llmkit.methods import get_method
    from llmkit.models.loading import resolve_model
    from llmkit.recipes.sft import sparse_logits_ok, trainer_class

    rows = prepare(SFTDataConfig(max_train_samples=16)).train
    data = Dataset.from_list([tokenize(r, tok, 64) for r in rows])
    m = get_method(method)
    torch.manual_seed(0)
    model = m.apply(AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama")), m.config_cls())
    model.eval()
    # prompt tuning prepends virtual tokens: it keeps the full logits
    assert sparse_logits_ok(model) == (method != "prompt")
    args = TRLConfig(output_dir="unused", per_device_train_batch_size=8, report_to="none", use_cpu=True,
                     packing=packing, padding_free=packing, max_length=64, gradient_checkpointing=False)
    losses, grads = [], []
    for token_metrics in (True, False):
        trainer = trainer_class(token_metrics)(model=model, args=args, processing_class=tok, train_dataset=data)
        batch = next(iter(trainer.get_train_dataloader()))
        n = (batch["labels"][:, 1:] != -100).sum()
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
        loss.backward()
        losses.append(float(loss))
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert losses[0] > 0
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)


def test_token_metrics_logged_when_asked(tmp_path, run_cli):
    out = tmp_path / "tm"
    res = run_cli("train", ROOT / "recipes/sft/lora.yaml", *SMOKE, "train.token_metrics=true", "eval.before=false", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert all(0 <= r["mean_token_accuracy"] <= 1 and r["entropy"] > 0 for r in rows)


def test_a_checkpoint_cut_short_by_a_kill_is_skipped_on_resume(tmp_path):
    """A kill while the Trainer writes checkpoint-6 leaves it without trainer_state.json (written
    last): resume must take checkpoint-3, not crash on the partial one."""
    from llmkit.tracking import last_checkpoint

    assert last_checkpoint(tmp_path / "none") == (None, None)
    for step, complete in ((3, True), (6, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "adapter_model.safetensors").write_bytes(b"")
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert last_checkpoint(tmp_path) == (str(tmp_path / "checkpoint-3"), 3)
