"""Find the repeated transformer blocks of any Hugging Face model (BERT, GPT-2, Llama, ...).

Methods that act per block (finetune the last N blocks, insert adapters) need the block list
without knowing the architecture: it is the `nn.ModuleList` whose length equals the config's
number of hidden layers (`encoder.layer` in BERT, `transformer.h` in GPT-2, `model.layers` in Llama).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def num_layers(config) -> int | None:
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(dotted name, ModuleList) of the transformer blocks, outermost first match."""
    from torch import nn

    config = getattr(model, "config", None)
    n = num_layers(config) if config is not None else None
    candidates = [(name, mod) for name, mod in model.named_modules()
                  if isinstance(mod, nn.ModuleList) and len(mod) > 0]
    if n is not None:
        exact = [(name, mod) for name, mod in candidates if len(mod) == n]
        if exact:
            return exact[0]
    if candidates:
        return max(candidates, key=lambda c: len(c[1]))
    raise ValueError(f"cannot find transformer blocks in {type(model).__name__}")


def modules_after_blocks(model: nn.Module) -> list[nn.Module]:
    """Norm modules registered after the block list and outside it (GPT-2's `ln_f`, Llama's
    `norm`): they sit between the last block and the output head, so they train with the last
    blocks. BERT has none (each block ends in its own LayerNorm); its pooler is not used."""
    from torch import nn

    name, _ = find_blocks(model)
    seen_blocks, after = False, []
    for child_name, child in model.named_modules():
        if child_name == name:
            seen_blocks = True
            continue
        if not seen_blocks or child_name.startswith(name + ".") or not child_name:
            continue
        if name.startswith(child_name + "."):  # an ancestor of the blocks
            continue
        if isinstance(child, (nn.LayerNorm,)) or type(child).__name__.endswith("Norm"):
            after.append(child)
    return after
