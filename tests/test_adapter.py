"""Houlsby bottleneck adapters (llmkit/methods/adapter.py) on tiny BERT, GPT-2 and Llama: exact
identity at init, trainable count equal to the closed form, only adapters (and norms) move,
save -> load into a fresh base gives equal outputs, and clear errors."""

import json

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM

from llmkit.config import build
from llmkit.errors import ConfigError, LlmkitError
from llmkit.methods import count_params
from llmkit.methods.adapter import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    Adapter,
    AdapterConfig,
    adapter_param_count,
    is_adapter_dir,
)
from llmkit.methods.bottleneck import (
    AdaptedProjection,
    BottleneckAdapter,
    load_adapter,
    save_adapter,
)
from llmkit.models import tiny
from llmkit.models.blocks import find_blocks

H, L = tiny.HIDDEN, tiny.LAYERS
# Norm parameters of each host, written out: BERT has an embeddings LayerNorm and two per block,
# GPT-2 two LayerNorms per block and ln_f, Llama two RMSNorms (scale only, no bias) per block and
# the final norm.
NORMS = {"bert": 2 * H + L * 2 * (2 * H), "gpt2": L * 2 * (2 * H) + 2 * H, "llama": L * 2 * H + H}
WRAPPED = {"bert": ("attention.output.dense", "output.dense"), "gpt2": ("attn.c_proj", "mlp.c_proj"),
           "llama": ("self_attn.o_proj", "mlp.down_proj")}
CASES = [("bert", AutoModel), ("gpt2", AutoModel), ("llama", AutoModel),
         ("gpt2", AutoModelForCausalLM), ("llama", AutoModelForCausalLM)]
IDS = [f"{arch}-{'lm' if auto is AutoModelForCausalLM else 'backbone'}" for arch, auto in CASES]


def load(arch, auto):
    # eval(): no dropout, so outputs are deterministic and comparable bitwise.
    return auto.from_pretrained(str(tiny.tiny_model_path(f"tiny-{arch}"))).eval()


def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 300, (2, 9), generator=g)  # (B, T)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # one padded row, so masking is on the path too
    return {"input_ids": ids, "attention_mask": mask}


def outputs(model, b):
    out = model(**b)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state  # (B, T, V) or (B, T, H)


def toy_loss(model, b):
    if hasattr(model, "lm_head"):
        return model(**b, labels=b["input_ids"]).loss
    target = torch.randn(H, generator=torch.Generator().manual_seed(1))  # (H,)
    return (model(**b).last_hidden_state * target).mean()


def train_steps(model, b, steps=3):
    # Plain Adam without weight decay: a parameter moves only if a gradient reached it. The up-
    # projection moves at step 1; the down-projection gets gradients from step 2 (up is zero before).
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        toy_loss(model, b).backward()
        for n, p in model.named_parameters():
            assert p.requires_grad or p.grad is None, f"frozen {n} got a gradient"
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("arch, auto", CASES, ids=IDS)
def test_identity_at_init(arch, auto):
    b = batch()
    model = load(arch, auto)
    with torch.no_grad():
        before = outputs(model, b)
    Adapter().apply(model, AdapterConfig())
    wrapped = model.llmkit_adapter["wrapped_modules"]
    blocks_name, _ = find_blocks(model)
    assert wrapped == [f"{blocks_name}.{i}.{name}" for i in range(L) for name in WRAPPED[arch]]
    for w in wrapped:
        assert isinstance(model.get_submodule(w), AdaptedProjection)
    with torch.no_grad():
        after = outputs(model, b)
    # Zero up-projection adds exactly 0.0 to each sublayer output, and nothing else in the host's
    # computation changes, so equality is bitwise, not approximate.
    torch.testing.assert_close(after, before, rtol=0, atol=0)


@pytest.mark.parametrize("arch, auto", CASES, ids=IDS)
@pytest.mark.parametrize("train_layer_norms", [True, False])
def test_trainable_count_is_closed_form(arch, auto, train_layer_norms):
    # The default m=64 may exceed a tiny model's H: allowed, and the formula still holds.
    model = Adapter().apply(load(arch, auto), AdapterConfig(train_layer_norms=train_layer_norms))
    trainable, _ = count_params(model)
    assert trainable == adapter_param_count(H, 64, L) + (NORMS[arch] if train_layer_norms else 0)
    if hasattr(model, "lm_head"):
        assert not model.lm_head.weight.requires_grad


def test_param_count_formula():
    assert sum(p.numel() for p in BottleneckAdapter(384, 64).parameters()) == 2 * 384 * 64 + 64 + 384
    # all-MiniLM-L6-v2 (H=384, 6 layers) with m=64: 6 * 2 * 49,600.
    assert adapter_param_count(384, 64, 6) == 595_200
    assert adapter_param_count(32, 8, 2) == 2208


@pytest.mark.parametrize("arch, auto", CASES, ids=IDS)
def test_only_adapters_and_norms_move(arch, auto):
    b = batch()
    model = Adapter().apply(load(arch, auto), AdapterConfig(bottleneck=8))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, b)
    n_adapter = 0
    for n, p in model.named_parameters():
        if p.requires_grad:
            n_adapter += ".adapter." in n
            assert not torch.equal(p, before[n]), f"trainable {n} did not move"
        else:
            assert ".adapter." not in n
            assert torch.equal(p, before[n]), f"frozen {n} changed"
    assert n_adapter == 2 * L * 4  # down/up weight and bias of every adapter


@pytest.mark.parametrize("arch, auto", CASES, ids=IDS)
@pytest.mark.parametrize("train_layer_norms", [True, False])
def test_save_load_round_trip(tmp_path, arch, auto, train_layer_norms):
    from safetensors.torch import load_file

    b = batch()
    cfg = AdapterConfig(bottleneck=8, non_linearity="silu", train_layer_norms=train_layer_norms)
    model = Adapter().apply(load(arch, auto), cfg)
    train_steps(model, b)
    with torch.no_grad():
        trained = outputs(model, b)
    out = Adapter().save(model, tmp_path / "adapter", base_model=f"tiny-{arch}")
    assert is_adapter_dir(out)

    saved = load_file(str(out / WEIGHTS_NAME))
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert sum(t.numel() for t in saved.values()) == count_params(model)[0]
    for k in saved:  # an adapter tensor or, with train_layer_norms, a norm's
        owner = model.get_submodule(k.rsplit(".", 1)[0])
        is_adapter = ".adapter." in k and isinstance(owner, nn.Linear)
        is_norm = isinstance(owner, nn.LayerNorm) or type(owner).__name__.endswith("Norm")
        assert is_adapter or (train_layer_norms and is_norm), k
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert (out / WEIGHTS_NAME).stat().st_size < 0.1 * model_bytes
    meta = json.loads((out / CONFIG_NAME).read_text())
    assert meta["llmkit_method"] == "adapter" and meta["name"] == "adapter"
    assert (meta["bottleneck"], meta["non_linearity"], meta["train_layer_norms"]) == (8, "silu", train_layer_norms)
    assert meta["wrapped_modules"] == model.llmkit_adapter["wrapped_modules"]
    assert meta["base_model_name_or_path"] == f"tiny-{arch}"

    fresh = Adapter().load(load(arch, auto), out)
    with torch.no_grad():
        # Same weights, same computation: bitwise equal.
        torch.testing.assert_close(outputs(fresh, b), trained, rtol=0, atol=0)
    assert count_params(fresh)[0] == count_params(model)[0]


def test_load_is_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    model = Adapter().apply(load("gpt2", AutoModel), AdapterConfig(bottleneck=4))
    out = save_adapter(model, tmp_path / "a")
    # Saved from the bare backbone (`h.0...`), loaded into the LM (`transformer.h.0...`).
    with pytest.raises(LlmkitError, match="same model class"):
        load_adapter(load("gpt2", AutoModelForCausalLM), out)
    tensors = load_file(str(out / WEIGHTS_NAME))
    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(out / WEIGHTS_NAME))
    with pytest.raises(LlmkitError, match="missing"):
        load_adapter(load("gpt2", AutoModel), out)
    with pytest.raises(LlmkitError, match="not an llmkit adapter directory"):
        load_adapter(load("gpt2", AutoModel), tmp_path / "nowhere")


def test_is_adapter_dir(tmp_path):
    assert not is_adapter_dir(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"peft_type": "LORA"}))  # a PEFT adapter
    assert not is_adapter_dir(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    assert not is_adapter_dir(tmp_path)


@pytest.mark.parametrize("values, key", [
    ({"bottleneck": 0}, "method.bottleneck"),
    ({"bottleneck": -4}, "method.bottleneck"),
    ({"non_linearity": "tanh"}, "method.non_linearity"),
    ({"train_layer_norms": "maybe"}, "method.train_layer_norms"),
])
def test_bad_config_names_the_key(values, key):
    with pytest.raises(ConfigError, match=key):  # through the YAML/CLI loader
        build(AdapterConfig, values, prefix="method.")
    with pytest.raises(ConfigError, match=key):  # built in code
        AdapterConfig(**values).validate()


def test_model_without_blocks_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot find transformer blocks"):
        Adapter().apply(nn.Sequential(nn.Linear(4, 4)), AdapterConfig())

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block(), Block()])

    toy = Toy()
    with pytest.raises(ConfigError, match=r"block `layers\.0` \(Block\)"):
        Adapter().apply(toy, AdapterConfig())
    assert all(p.requires_grad for p in toy.parameters())  # left untouched


def test_apply_twice_is_refused():
    model = Adapter().apply(load("llama", AutoModel), AdapterConfig(bottleneck=4))
    with pytest.raises(LlmkitError, match="already has adapters"):
        Adapter().apply(model, AdapterConfig(bottleneck=4))
