"""The bottleneck adapters' torch side (llmkit/methods/adapter.py has the method, its config and the
paper's description): the adapter modules, their insertion after each sublayer, and save / load in
llmkit's own adapter directory."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from llmkit.errors import ConfigError, LlmkitError
from llmkit.methods.adapter import CONFIG_NAME, WEIGHTS_NAME, AdapterConfig, is_adapter_dir  # noqa: F401
from llmkit.models.blocks import find_blocks

INIT_STD = 1e-2  # down-projection init (paper Sec. 3.6), truncated at two standard deviations
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU}

# (attention output projection, feed-forward output projection), relative to one block; the first
# pair that a block has both of wins. Supporting another family is one line here.
SUBLAYER_OUTPUTS = (
    ("attention.output.dense", "output.dense"),  # BERT, RoBERTa, MiniLM (BertLayer)
    ("attn.c_proj", "mlp.c_proj"),  # GPT-2 (Conv1D, weight stored (in, out))
    ("self_attn.o_proj", "mlp.down_proj"),  # Llama, Mistral, Qwen2
    ("attention.out_lin", "ffn.lin2"),  # DistilBERT
    ("self_attn.out_proj", "fc2"),  # OPT
    ("attention.dense", "mlp.dense_4h_to_h"),  # GPT-NeoX, Pythia
)



class BottleneckAdapter(nn.Module):
    """`h + up(act(down(h)))`, (..., H) -> (..., H); exactly the identity until `up` moves."""

    def __init__(self, hidden: int, bottleneck: int, non_linearity: str = "gelu", *, device=None, dtype=None):
        super().__init__()
        self.non_linearity = non_linearity
        self.down = nn.Linear(hidden, bottleneck, device=device, dtype=dtype)  # H -> m
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden, device=device, dtype=dtype)  # m -> H
        nn.init.trunc_normal_(self.down.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # zero up-projection: the adapter adds exactly 0 at step 0
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, H)
        # Cast in and out so an fp32 adapter also works on a quantized or half-precision host.
        z = self.up(self.act(self.down(h.to(self.down.weight.dtype))))  # (B, T, m) -> (B, T, H)
        return h + z.to(h.dtype)


class AdaptedProjection(nn.Module):
    """A host projection followed by its adapter: `adapter(base_layer(x))`."""

    def __init__(self, base_layer: nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H_in) -> (B, T, H)
        return self.adapter(self.base_layer(x))


# ----------------------------------------------------------------------------- finding and inserting


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
        return True
    except AttributeError:
        return False


def find_targets(model: nn.Module) -> list[str]:
    """Dotted names of the two sublayer output projections of every block, in block order."""
    try:
        blocks_name, blocks = find_blocks(model)
    except ValueError as e:
        raise ConfigError(f"method.name=adapter: {e}; adapters go inside transformer blocks") from None
    targets = []
    for i, block in enumerate(blocks):
        pair = next((p for p in SUBLAYER_OUTPUTS if _has(block, p[0]) and _has(block, p[1])), None)
        if pair is None:
            known = "; ".join(" + ".join(p) for p in SUBLAYER_OUTPUTS)
            raise ConfigError(
                f"method.name=adapter: block `{blocks_name}.{i}` ({type(block).__name__}) has no known "
                f"attention-output + feed-forward-output projection pair (known: {known}); add its "
                f"names to SUBLAYER_OUTPUTS in llmkit/methods/adapter.py")
        targets += [f"{blocks_name}.{i}.{name}".lstrip(".") for name in pair]
    return targets


def _out_features(proj: nn.Module) -> int:
    for attr in ("out_features", "nf"):  # nn.Linear (and bitsandbytes' Linear4bit), GPT-2's Conv1D
        if isinstance(getattr(proj, attr, None), int):
            return getattr(proj, attr)
    raise ConfigError(f"method.name=adapter: cannot tell the output size of {type(proj).__name__}")


def _is_norm(module: nn.Module) -> bool:
    # LayerNorm in BERT and GPT-2, LlamaRMSNorm and friends elsewhere (same rule as models/blocks.py).
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("Norm")


def insert_adapters(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """Freeze `model`, wrap every target projection with a trainable adapter, optionally unfreeze the norms."""
    cfg.validate()
    if any(isinstance(m, AdaptedProjection) for m in model.modules()):
        raise LlmkitError("method.name=adapter: this model already has adapters; start from a fresh base model")
    targets = find_targets(model)  # before any change, so an unsupported model is left untouched
    for p in model.parameters():
        p.requires_grad_(False)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        proj = getattr(parent, child)
        weight = next(proj.parameters())
        # Same device and dtype as the host; fp32 when the host weight is not a float (4/8-bit).
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        adapter = BottleneckAdapter(_out_features(proj), cfg.bottleneck, cfg.non_linearity,
                                    device=weight.device, dtype=dtype)
        setattr(parent, child, AdaptedProjection(proj, adapter))
    if cfg.train_layer_norms:
        for module in model.modules():
            if _is_norm(module):
                module.requires_grad_(True)
    # What save_adapter needs to know later; a plain attribute, not part of the state dict.
    model.llmkit_adapter = {**asdict(cfg), "wrapped_modules": targets}
    return model


# ----------------------------------------------------------------------------- save and load


def _info(model: nn.Module) -> dict:
    info = getattr(model, "llmkit_adapter", None)
    if info is None:
        raise LlmkitError("this model has no llmkit adapters (apply the `adapter` method first)")
    return info


def _saved_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters an adapter checkpoint holds: every adapter's, plus the norms' if they trained."""
    train_norms = _info(model)["train_layer_norms"]
    out = {}
    for module_name, module in model.named_modules():
        if isinstance(module, BottleneckAdapter) or (train_norms and _is_norm(module)):
            out.update(module.named_parameters(prefix=module_name))
    return out


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().cpu().contiguous() for k, p in _saved_parameters(model).items()}


def save_adapter(model: nn.Module, out_dir: str | Path, *, base_model: str | None = None) -> Path:
    """Write adapter_model.safetensors + adapter_config.json to `out_dir`. `base_model` (a name
    `llmkit` can load, e.g. `minilm`) defaults to the model's `config._name_or_path`."""
    from safetensors.torch import save_file

    info = _info(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(out / WEIGHTS_NAME))
    if base_model is None:
        base_model = getattr(getattr(model, "config", None), "_name_or_path", None)
    meta = {"llmkit_method": "adapter", **info, "base_model_name_or_path": base_model}
    (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Insert adapters into a fresh base `model` (same class as when saved) and load their weights.
    Strict: a missing, extra or misshapen tensor is an error. Adapters come back trainable."""
    from safetensors.torch import load_file

    path = Path(path)
    if not is_adapter_dir(path):
        raise LlmkitError(f"{path} is not an llmkit adapter directory (no {CONFIG_NAME} with \"llmkit_method\": \"adapter\")")
    meta = json.loads((path / CONFIG_NAME).read_text())
    cfg = AdapterConfig(**{k: meta[k] for k in ("bottleneck", "non_linearity", "train_layer_norms")})
    insert_adapters(model, cfg)
    wrapped = model.llmkit_adapter["wrapped_modules"]
    if wrapped != meta["wrapped_modules"]:
        raise LlmkitError(
            f"{path}: adapters were saved at {meta['wrapped_modules'][:2]}..., but this "
            f"{type(model).__name__} has them at {wrapped[:2]}...; load into the same model class "
            f"that was saved (AutoModel vs AutoModelForCausalLM) and base model "
            f"{meta.get('base_model_name_or_path')!r}")
    tensors = load_file(str(path / WEIGHTS_NAME))
    params = _saved_parameters(model)
    missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise LlmkitError(f"{path / WEIGHTS_NAME} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    with torch.no_grad():
        for key, tensor in tensors.items():
            if params[key].shape != tensor.shape:
                raise LlmkitError(f"{path / WEIGHTS_NAME}: `{key}` has shape {tuple(tensor.shape)}, the model expects {tuple(params[key].shape)}")
            params[key].copy_(tensor)
    return model


# ----------------------------------------------------------------------------- the method


