"""Methods behind the registry, on tiny BERT, GPT-2 and Llama backbones: exactly the intended
parameters train and move, frozen ones stay bitwise equal, counts match the closed form."""

import numpy as np
import pytest
import torch

from llmkit.config import ModelConfig
from llmkit.methods import REGISTRY, count_params, get_method, load_kwargs
from llmkit.models import tiny
from llmkit.models.classifier import SequenceClassifier
from llmkit.models.loading import load_backbone, load_tokenizer

H, F, C = tiny.HIDDEN, tiny.FFN, 3
KV = H // tiny.HEADS * tiny.KV_HEADS
BLOCK = {  # parameters of one block, written out per architecture
    "bert": 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H,  # q,k,v,o + LN + FFN + LN
    "gpt2": 2 * H + (H * 3 * H + 3 * H) + (H * H + H) + 2 * H + (H * F + F) + (F * H + H),  # ln_1, c_attn, c_proj, ln_2, mlp
    "llama": 2 * H * H + 2 * H * KV + 3 * H * F + 2 * H,  # q,o + k,v (GQA) + gate,up,down + 2 RMSNorm
}
FINAL_NORM = {"bert": 0, "gpt2": 2 * H, "llama": H}
HEADS = {"bert": H * C + C, "gpt2": H * C, "llama": H * C}  # decoders pool the last token, bias-free (as HF)
L, R, V, M = tiny.LAYERS, 4, 5, 8  # blocks; LoRA rank, virtual tokens, adapter width in the cases below
# LoRA on all linear layers: r * (d_in + d_out) for every adapted matrix of a block.
LORA_BLOCK = {
    "bert": R * (4 * (H + H) + (H + F) + (F + H)),  # q, k, v, attention out; intermediate; output
    "gpt2": R * ((H + 3 * H) + (H + H) + (H + F) + (F + H)),  # c_attn (fused qkv), c_proj, c_fc, c_proj
    "llama": R * (2 * (H + H) + 2 * (H + KV) + 2 * (H + F) + (F + H)),  # q, o; k, v; gate, up; down
}
KV_WIDTH = {"bert": H, "gpt2": H, "llama": KV}  # prefix vectors have the key/value width
# Norm parameters the adapter method trains (Houlsby): every LayerNorm (weight+bias) / RMSNorm (weight).
NORMS = {"bert": 2 * H + L * 2 * 2 * H, "gpt2": L * 2 * 2 * H + 2 * H, "llama": L * 2 * H + H}


def make(arch, method_name, **method_kw):
    cfg = ModelConfig(name=f"tiny-{arch}")
    method = get_method(method_name)
    mcfg = method.config_cls(**method_kw)
    backbone = load_backbone(cfg, **load_kwargs(method_name, mcfg))
    backbone = method.apply(backbone, mcfg)
    pooling = "mean" if arch == "bert" else "last"
    torch.manual_seed(0)
    return SequenceClassifier(backbone, C, pooling), load_tokenizer(cfg)


def expected_trainable(arch, method_name, kw, total):
    from llmkit.methods.adapter import adapter_param_count

    n_layers = kw.get("trainable_layers", 0)
    HEAD = HEADS[arch]
    return {
        "full": total,
        "feature_based": HEAD,
        "last_layers": HEAD + n_layers * BLOCK[arch] + (FINAL_NORM[arch] if n_layers else 0),
        "lora": HEAD + L * LORA_BLOCK[arch],
        "qlora": HEAD + L * LORA_BLOCK[arch],
        "adapter": HEAD + adapter_param_count(H, M, L) + (NORMS[arch] if kw.get("train_layer_norms", True) else 0),
        "prefix": HEAD + V * L * 2 * KV_WIDTH[arch],
        "prompt": HEAD + V * H,
    }[method_name]


CASES = [("feature_based", {}), ("last_layers", {"trainable_layers": 0}), ("last_layers", {"trainable_layers": 1}),
         ("last_layers", {"trainable_layers": 2}), ("full", {}), ("lora", {"r": R}), ("qlora", {"r": R}),
         ("adapter", {"bottleneck": M}), ("adapter", {"bottleneck": M, "train_layer_norms": False}),
         ("prefix", {"num_virtual_tokens": V}), ("prompt", {"num_virtual_tokens": V})]


def test_registry_covers_cases():
    assert {name for name, _ in CASES} == set(REGISTRY)


@pytest.mark.parametrize("arch", tiny.ARCHS)
@pytest.mark.parametrize("method_name, kw", CASES)
def test_only_intended_parameters_train(arch, method_name, kw):
    model, tok = make(arch, method_name, **kw)
    trainable, total = count_params(model)
    assert trainable == expected_trainable(arch, method_name, kw, total)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = tok(["a good day", "the food was cold and late", "fine"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 2])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), labels)
        loss.backward()
        for n, p in model.named_parameters():
            if not p.requires_grad:
                assert p.grad is None, f"frozen {n} got a gradient"
        opt.step()
        opt.zero_grad()
    for n, p in model.named_parameters():
        if p.requires_grad:
            if "pooler" in n:  # BERT's pooler is not on the path of mean pooling
                continue
            assert not torch.equal(p, before[n]), f"trainable {n} did not move"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


def test_lora_closed_form_example():
    """The seed document's example: a 25 x 50 weight with rank 5 has 5 * (25 + 50) = 375 LoRA parameters."""
    from peft import LoraConfig, get_peft_model

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(50, 25, bias=False)  # weight (25, 50)

        def forward(self, x):
            return self.proj(x)

    model = get_peft_model(One(), LoraConfig(r=5, target_modules=["proj"]))
    assert count_params(model)[0] == 375


@pytest.mark.parametrize("arch", tiny.ARCHS)
@pytest.mark.parametrize("method_name, kw", [("lora", {"r": R}), ("adapter", {"bottleneck": M}), ("last_layers", {}), ("full", {})])
def test_identity_at_init(arch, method_name, kw):
    """LoRA and adapters start as the base model exactly (prefix and prompt, by design, do not)."""
    cfg = ModelConfig(name=f"tiny-{arch}")
    tok = load_tokenizer(cfg)
    batch = tok(["a good day", "the food was cold"], padding=True, return_tensors="pt")
    base = load_backbone(cfg).eval()
    method = get_method(method_name)
    adapted = method.apply(load_backbone(cfg), method.config_cls(**kw)).eval()
    with torch.no_grad():
        torch.testing.assert_close(adapted(**batch).last_hidden_state, base(**batch).last_hidden_state, rtol=0, atol=0)


def test_last_layers_rejects_too_many():
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="only 2 blocks"):
        make("bert", "last_layers", trainable_layers=5)


def test_feature_based_head_equals_logistic_regression():
    """The folded head (standardisation inside) predicts exactly what scikit-learn predicts."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)) * rng.uniform(0.1, 5, size=8) + rng.normal(size=8)
    y = (x[:, 0] + x[:, 1] > x[:, 2]).astype(int) + (x[:, 3] > 1)
    method = get_method("feature_based")
    w, b = method.fit_head(x, y, 3, method.config_cls(), seed=0)
    mu, sd = x.mean(0), x.std(0) + 1e-8
    ref = LogisticRegression(max_iter=2000, random_state=0).fit((x - mu) / sd, y)
    np.testing.assert_array_equal((x @ w.T + b).argmax(1), ref.predict((x - mu) / sd))
    np.testing.assert_allclose(x @ w.T + b, ref.decision_function((x - mu) / sd), rtol=1e-4, atol=1e-4)


def test_feature_based_binary_head():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int)
    method = get_method("feature_based")
    w, b = method.fit_head(x, y, 2, method.config_cls(), seed=0)
    assert w.shape == (2, 4)
    assert ((x @ w.T + b).argmax(1) == y).mean() > 0.9


@pytest.mark.parametrize("method_name, kw", [c for c in CASES if c[0] != "qlora"] + [("qlora", {"r": R})])
def test_save_load_roundtrip_identical_logits(tmp_path, method_name, kw):
    """Whatever a method trains is saved and comes back: the reloaded classifier's logits are equal."""
    from llmkit.models.classifier import load_classifier, save_classifier

    model, tok = make("llama", method_name, **kw)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    save_classifier(model, tok, tmp_path / "m", labels=["a", "b", "c"], base_model="tiny-llama", max_length=32, method=method_name,
                    method_config=kw)
    loaded, _, meta = load_classifier(tmp_path / "m")
    assert meta["method"] == method_name
    batch = tok(["a good day", "the food was cold and late"], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["input_ids"], batch["attention_mask"]),
                                   model(batch["input_ids"], batch["attention_mask"]), rtol=0, atol=1e-5)
