"""`llmkit estimate-memory`: the ZeRO / Korthikanti formulas worked out by hand, meta-device counts
equal to real counts, and the CLI on every training recipe (meta device only: no weights, no training)."""

import json

import pytest
import torch
from conftest import ROOT

from llmkit.cli import main
from llmkit.errors import ConfigError
from llmkit.memory import (
    GIB,
    OVERHEAD_BYTES,
    PRECISIONS,
    Held,
    Shape,
    Strategy,
    activation_bytes,
    analytic_count,
    estimate_recipe,
    estimate_rows,
    layer_activation_bytes,
    meta_causal_lm,
    model_state_bytes,
    nf4_bytes_per_param,
    recommend,
)

RECIPES = sorted(p for kind in ("classify", "sft", "rlhf") for p in (ROOT / "recipes" / kind).glob("*.yaml"))
BF16, FP32 = PRECISIONS["bf16"], PRECISIONS["fp32"]


def _row(est, stage, offload=False):
    return next(r for r in est.rows if r.strategy == Strategy(stage, offload))


# ----------------------------------------------------------------------------- formulas on numbers


@pytest.mark.parametrize("stage, weights, grads, optim", [
    # Ψt = 1000 trainable, Ψf = 600 frozen, N = 4, largest module 100 params (ZeRO section 5)
    (0, 2 * 1000 + 2 * 600, 2 * 1000, 12 * 1000),  # DDP: 2Ψ + 2Ψ + 12Ψ
    (1, 2 * 1000 + 2 * 600, 2 * 1000, 12 * 1000 / 4),  # 2Ψ + 2Ψ + 12Ψ/N
    (2, 2 * 1000 + 2 * 600, 2 * 1000 / 4, 12 * 1000 / 4),  # 2Ψ + (2 + 12)Ψ/N
    (3, (2 * 1000 + 2 * 600) / 4 + 2 * 2 * 100, 2 * 1000 / 4, 12 * 1000 / 4),  # all /N + 2 gathered modules
])
def test_zero_stages_divide_by_n(stage, weights, grads, optim):
    held = Held("model", trainable=1000, frozen=600, largest_module=100)
    got = model_state_bytes([held], BF16, Strategy(stage), num_gpus=4)
    assert got == {"weights": weights, "gradients": grads, "optimizer": optim, "cpu": 0}
    one = model_state_bytes([held], BF16, Strategy(stage), num_gpus=1)  # one GPU: nothing to shard or gather
    assert one == {"weights": 3200, "gradients": 2000, "optimizer": 12000, "cpu": 0}


def test_fp32_is_4_4_8_and_frozen_4():
    got = model_state_bytes([Held("m", trainable=10, frozen=5)], FP32, Strategy(0), num_gpus=1)
    assert got == {"weights": 4 * 10 + 4 * 5, "gradients": 4 * 10, "optimizer": 8 * 10, "cpu": 0}


def test_offload_moves_optimizer_then_weights_to_cpu():
    held = Held("model", trainable=1000, frozen=600, largest_module=100)
    # per process on CPU: 12Ψ/N Adam states + 4Ψ/N fp32 gradient shard for CPU Adam
    z2 = model_state_bytes([held], BF16, Strategy(2, offload=True), num_gpus=4)
    assert z2 == {"weights": 3200, "gradients": 500, "optimizer": 0, "cpu": 3000 + 1000}
    z3 = model_state_bytes([held], BF16, Strategy(3, offload=True), num_gpus=4)  # + the weights' shard
    assert z3 == {"weights": 2 * 2 * 100, "gradients": 500, "optimizer": 0, "cpu": 3000 + 1000 + 3200 / 4}
    rows = estimate_rows([held], 0, BF16, 4, [Strategy(3), Strategy(3, True)], overhead=0)
    assert rows[0].cpu_total == 0 and rows[1].cpu_total == 4 * (4000 + 800)  # all 4 processes on one machine
    assert rows[1].total < rows[0].total


def test_qlora_storage_per_parameter():
    assert nf4_bytes_per_param(True) == pytest.approx((4 + 8 / 64 + 32 / (64 * 256)) / 8)  # 0.516
    assert nf4_bytes_per_param(False) == 0.5625
    held = Held("m", trainable=10, frozen=0, frozen_4bit=1000, frozen_4bit_bytes=516.0, frozen_fp32=50)
    assert model_state_bytes([held], BF16, Strategy(0), 1)["weights"] == 2 * 10 + 516 + 4 * 50


def test_korthikanti_per_layer_activations():
    # GPT-3-like layer, plain MLP of width 4h, eager attention: s*b*h*(34 + 5*a*s/h) (eq. 1)
    s, b, h, a = 2048, 1, 12288, 96
    eager = Shape(hidden=h, layers=96, heads=a, intermediate=4 * h, vocab=51200, kv_heads=a, head_dim=128, flash=False)
    assert layer_activation_bytes(eager, b, s) == s * b * h * (34 + 5 * a * s / h)
    flash = Shape(hidden=h, layers=96, heads=a, intermediate=4 * h, vocab=51200, kv_heads=a, head_dim=128)
    assert layer_activation_bytes(flash, b, s) == s * b * h * 34  # SDPA / flash: no s x s scores
    gated = Shape(hidden=128, layers=4, heads=4, intermediate=352, vocab=1024, kv_heads=4, head_dim=32, gated_mlp=True)
    assert layer_activation_bytes(gated, 16, 256) == 256 * 16 * 128 * (15 + 3 + 8 * 352 / 128)


def test_checkpointing_keeps_layer_inputs_plus_one_layer():
    shape = Shape(hidden=64, layers=8, heads=4, intermediate=256, vocab=512, kv_heads=4, head_dim=16)
    s, b = 128, 4
    full = layer_activation_bytes(shape, b, s)
    off = activation_bytes(shape, b, s, layers_with_grad=8, checkpointing=False, lm_logits=True)
    on = activation_bytes(shape, b, s, layers_with_grad=8, checkpointing=True, lm_logits=True)
    assert off == {"layers": 8 * full, "logits": s * b * 512 * 4 * 2}
    assert on == {"layers": 8 * 2 * s * b * 64 + full, "logits": s * b * 512 * 4 * 2}
    assert on["layers"] < off["layers"]
    frozen = activation_bytes(shape, b, s, layers_with_grad=0, checkpointing=False, lm_logits=False)
    assert frozen == {"layers": full, "logits": 0}  # no backward through the blocks: one layer, transient


def test_recommendation_is_the_cheapest_communication_that_fits():
    held = Held("model", trainable=10 * GIB // 16, frozen=0)  # 10 GiB of model states at stage 0
    rows = estimate_rows([held], 0, BF16, 8, [Strategy(0), Strategy(1), Strategy(2), Strategy(3), Strategy(3, True)],
                         overhead=0, gpu_memory=4 * GIB)
    assert [r.fits for r in rows] == [False, True, True, True, True]
    assert recommend(rows).strategy == Strategy(1)
    rows = estimate_rows([held], 0, BF16, 8, [Strategy(0)], overhead=0, gpu_memory=1)
    assert recommend(rows) is None


def test_nothing_fits_suggests_the_micro_batch_that_does():
    recipe = ROOT / "recipes/sft/lora.yaml"
    full = estimate_recipe(recipe)  # global batch 16 in micro batches of 4, 1 GPU
    assert (full.batch_size, full.micro_batch, full.accumulation) == (16, 4, 4)
    fixed = full.rows[0].total - full.rows[0].activations
    # room for half the activations: 2 sequences per micro batch, 8 accumulation steps keep the global 16
    est = estimate_recipe(recipe, ["train.learning_rate=1e-3"], gpu_memory_gib=(fixed + full.activations["total"] / 2) / GIB)
    assert recommend(est.rows) is None
    assert "train.micro_batch_size=2 (8 accumulation steps), which fits with single_gpu" in est.recommendation()
    ok = estimate_recipe(recipe, ["train.learning_rate=1e-3", "train.micro_batch_size=2"], gpu_memory_gib=80)
    assert ok.accumulation == 8 and ok.recommendation().endswith(
        f"-m llmkit train {recipe} train.learning_rate=1e-3 train.micro_batch_size=2")  # the same overrides


# ----------------------------------------------------------------------------- counting on the meta device


def _real_counts(path, method_name):
    from transformers import AutoModelForCausalLM

    from llmkit.methods import get_method

    method = get_method(method_name)
    model = method.apply(AutoModelForCausalLM.from_pretrained(path), method.config_cls())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


@pytest.mark.parametrize("method", ["full", "lora"])
def test_meta_count_equals_real_model_and_bytes_equal_the_formula(method):
    from llmkit.models.tiny import tiny_model_path

    trainable, frozen = _real_counts(tiny_model_path("tiny-llama"), method)
    est = estimate_recipe(ROOT / "recipes/sft/lora.yaml", ["model=tiny-llama", f"method={method}"], num_gpus=2)
    (held,) = est.helds
    assert (held.trainable, held.total - held.trainable) == (trainable, frozen)
    assert (method == "full") == (frozen == 0)
    stage0 = _row(est, 0)
    assert stage0.weights == 2 * trainable + 2 * frozen
    assert stage0.gradients == 2 * trainable and stage0.optimizer == 12 * trainable
    assert _row(est, 1).optimizer == 12 * trainable / 2 and _row(est, 2).gradients == 2 * trainable / 2
    assert stage0.total == stage0.weights + stage0.gradients + stage0.optimizer + stage0.activations + OVERHEAD_BYTES


@pytest.mark.parametrize("method", ["full", "feature_based", "last_layers", "lora", "adapter", "prefix", "prompt"])
def test_analytic_fallback_matches_the_applied_method(method):
    from transformers import LlamaConfig

    from llmkit.methods import count_params, get_method
    from llmkit.models.tiny import FFN, HEADS, HIDDEN, KV_HEADS, LAYERS, VOCAB

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, tie_word_embeddings=False)
    m = get_method(method)
    cfg = m.config_cls(**({"trainable_layers": 1} if method == "last_layers" else {}))
    added, unfrozen = analytic_count(meta_causal_lm(config), method, cfg)
    with torch.device("meta"):
        applied = m.apply(meta_causal_lm(config), cfg)
    assert added + sum(p.numel() for p in unfrozen) == count_params(applied)[0]


def test_method_that_fails_on_meta_is_counted_analytically(monkeypatch):
    from llmkit.methods import REGISTRY

    expected = estimate_recipe(ROOT / "recipes/sft/lora.yaml", ["model=tiny-llama"]).helds[0]

    def boom(model, cfg):
        raise NotImplementedError("Cannot copy out of meta tensor")

    monkeypatch.setattr(REGISTRY["lora"], "apply", boom)
    est = estimate_recipe(ROOT / "recipes/sft/lora.yaml", ["model=tiny-llama"])
    assert est.helds[0].trainable == expected.trainable and est.helds[0].total == expected.total
    assert any("counted analytically" in n for n in est.notes)


def test_qwen2_half_billion_config_without_weights(tmp_path):
    from transformers import Qwen2Config

    # Qwen2-0.5B's published shape; only config.json is written, nothing is downloaded or allocated.
    Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                max_position_embeddings=32768).save_pretrained(tmp_path)
    est = estimate_recipe(ROOT / "recipes/sft/full.yaml", [f"model={tmp_path}", "model.max_length=1024"],
                          num_gpus=8, gpu_memory_gib=24)
    psi = 494_032_768  # the 0.49B parameters of Qwen2-0.5B (tied embeddings counted once)
    assert est.helds[0].trainable == psi and est.helds[0].frozen == 0
    assert _row(est, 0).weights + _row(est, 0).gradients + _row(est, 0).optimizer == 16 * psi
    assert _row(est, 3).optimizer == 12 * psi / 8
    # micro batch 16 / 8 GPUs = 2; s = 1024; logits in fp32 (x2 for their gradient)
    assert (est.micro_batch, est.accumulation, est.seq_len) == (2, 1, 1024)
    assert est.activations["train"] == pytest.approx(
        24 * 1024 * 2 * 896 * (15 + 3 + 8 * 4864 / 896) + 1024 * 2 * 151936 * 4 * 2)
    assert est.recommendation().startswith("multi_gpu: ")  # ~13 GiB per GPU: plain DDP fits in 24 GiB


def test_ppo_counts_every_model_it_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/sft-lora, runs/reward-lora here: the embedded model's shape stands in
    ppo = ROOT / "recipes/rlhf/ppo.yaml"
    est = estimate_recipe(ppo)
    assert sum("does not exist yet" in n for n in est.notes) == 2
    lora = {h.role: h for h in est.helds}
    assert lora["reference"].total == 0  # the adapter disabled: no second copy
    assert lora["reward model"].trainable == 0 and lora["reward model"].frozen > 0
    assert lora["value model"].frozen == 0 and lora["value model"].trainable == lora["reward model"].frozen
    full = {h.role: h for h in estimate_recipe(ppo, ["method=full"]).helds}
    assert full["reference"].frozen == full["policy"].trainable  # a frozen copy of the policy
    fn = estimate_recipe(ppo, ["reward.function=llmkit.rlhf.rewards:instruction_exact_match"])
    assert "reward model" not in {h.role for h in fn.helds}


def test_gradient_checkpointing_flag_lowers_activations():
    recipe = ROOT / "recipes/sft/full.yaml"
    off = estimate_recipe(recipe, gradient_checkpointing=False)
    on = estimate_recipe(recipe, gradient_checkpointing=True)
    assert on.activations["total"] < off.activations["total"]
    assert on.rows[0].weights == off.rows[0].weights
    # prefix tuning cannot train with checkpointing (llmkit/methods/prefix.py): it stays off
    assert not estimate_recipe(ROOT / "recipes/sft/prefix.yaml", gradient_checkpointing=True).gradient_checkpointing


def test_last_layers_store_only_the_trained_blocks():
    # untied output layer: backward stops at the one trained block
    est = estimate_recipe(ROOT / "recipes/sft/last_layers.yaml", ["model=tiny-llama"])  # trainable_layers: 1
    assert est.streams[0].layers_with_grad == 1
    lora = estimate_recipe(ROOT / "recipes/sft/lora.yaml", ["model=tiny-llama"])
    assert lora.streams[0].layers_with_grad == est.streams[0].shape.layers > 1
    # SmolLM2 ties lm_head to the input embeddings: training it trains them, so backward runs through every block
    tied = estimate_recipe(ROOT / "recipes/sft/last_layers.yaml")
    assert tied.streams[0].layers_with_grad == tied.streams[0].shape.layers == 30


def test_qlora_stores_the_base_in_four_bits():
    lora = estimate_recipe(ROOT / "recipes/sft/lora.yaml").helds[0]
    q = estimate_recipe(ROOT / "recipes/sft/qlora.yaml").helds[0]
    assert q.trainable == lora.trainable and q.total == lora.total
    assert q.frozen == 0 and q.frozen_4bit > 0 and q.frozen_4bit + q.frozen_fp32 == lora.frozen
    assert q.frozen_4bit_bytes == pytest.approx(q.frozen_4bit * nf4_bytes_per_param(True))


# ----------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_cli_on_every_recipe(path, capsys):
    assert main(["estimate-memory", str(path), "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    assert "total/GPU" in out and "fits 80 GiB" in out and "zero3_offload" in out
    assert "parameters   Ψt = " in out and "micro batch b = " in out and "recommendation: " in out


def test_cli_json_parses(capsys):
    args = ["estimate-memory", str(ROOT / "recipes/sft/lora.yaml"), "--json", "--num-gpus", "2", "--zero-stage", "3",
            "--offload", "--gpu-memory", "24", "--precision", "fp32", "--gradient-checkpointing", "train.batch_size=8"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["strategies"]
    assert row["profiles"] == ["zero3_offload"] and row["optimizer"] == 0 and row["cpu_total"] > 0
    assert data["precision"] == "fp32" and data["gradient_checkpointing"] is True
    assert (data["micro_batch"], data["accumulation"]) == (4, 1) and row["fits"] is True
    assert data["recommendation"] == "zero3_offload"


@pytest.mark.parametrize("args, needle", [
    (["recipes/sft/nope.yaml"], "recipe file not found: recipes/sft/nope.yaml"),
    (["recipes/sft/lora.yaml", "train.lerning_rate=1"], "unknown key `train.lerning_rate` (did you mean `train.learning_rate`?)"),
    (["recipes/sft/lora.yaml", "model.name=/no/such/model"], "model.name=/no/such/model: model directory not found"),
    (["recipes/sft/lora.yaml", "train.batch_size=16", "--num-gpus", "3"], "not a multiple"),
    (["recipes/sft/lora.yaml", "--zero-stage", "1", "--offload"], "--offload needs --zero-stage 2 or 3"),
])
def test_cli_errors_are_one_clear_line(args, needle, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["estimate-memory", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: ") and needle in err and "Traceback" not in err


def test_estimate_recipe_rejects_bad_numbers():
    with pytest.raises(ConfigError, match="--num-gpus must be >= 1"):
        estimate_recipe(ROOT / "recipes/sft/lora.yaml", num_gpus=0)
