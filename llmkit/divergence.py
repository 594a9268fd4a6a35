"""A run stops at its first non-finite loss or gradient, before the optimizer applies it.

Without this a diverged run trains to the end: transformers' Trainer filters NaN/inf losses out of
its logs (`logging_nan_inf_filter`, so history.jsonl shows loss 0.0), clipping turns an infinite
gradient into NaN weights, and the run then saves the NaN model and deletes its checkpoints.

`check_finite(step, loss=...)` is for llmkit's own loops (PPO, classification); `guard_callback()` is
for the Trainer-based recipes (SFT, reward model): it checks every local gradient just before each
optimizer step, and each logged loss and gradient norm (under DeepSpeed ZeRO the gradients live in
the engine's partitions, so there the logged figures are the check). Either raises `Diverged`, which
the CLI prints as one line and exits 2; the checkpoints already written stay, the broken step is not
applied, metrics.json and the model are not written.
"""

from __future__ import annotations

import math
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.tracking import last_checkpoint


class Diverged(LlmkitError):
    """A loss or a gradient became NaN or infinite."""


def _value(v) -> float:
    return float(v.detach().float().sum()) if hasattr(v, "detach") else float(v)


def message(step: int, what: str, value: float, learning_rate: float | None = None,
            checkpoints: str | Path | None = None, applied: bool = False) -> str:
    lr = f" (train.learning_rate={learning_rate:g})" if learning_rate is not None else ""
    where = ""
    if checkpoints is not None:
        path, done = last_checkpoint(checkpoints)
        where = (f"; the last checkpoint before it is {path} (step {done}; train.resume=true continues from it, "
                 f"or start again)" if path else "; no checkpoint had been written")
    step_ = ("the update was applied before the check (the logged figures)" if applied else
             "the optimizer step it would have fed was not taken")
    return (f"training diverged at step {step}: {what} is {value}{lr}; {step_}, no model or metrics.json was "
            f"written{where}. Lower train.learning_rate")


def check_finite(step: int, learning_rate: float | None = None, checkpoints=None, applied: bool = False,
                 **values) -> None:
    """Raise `Diverged` naming `step` and the first of `values` (tensors or numbers) that is not finite."""
    for name, v in values.items():
        x = _value(v)
        if not math.isfinite(x):
            raise Diverged(message(step, name, x, learning_rate, checkpoints, applied))


def _local_gradient_sum(model) -> float:
    import torch

    sums = [p.grad.detach().float().sum() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(sums).sum()) if sums else 0.0  # NaN and inf survive the sum


def guard_callback():
    """A TrainerCallback that raises `Diverged` at the first non-finite gradient or logged loss. The
    Trainer's args need `logging_nan_inf_filter=False`, or its logs hide the NaN."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if model is not None:
                check_finite(state.global_step + 1, args.learning_rate, args.output_dir,
                             gradient=_local_gradient_sum(model))

        def on_log(self, args, state, control, logs=None, **kwargs):
            figures = {k: logs[k] for k in ("loss", "grad_norm") if logs and logs.get(k) is not None}
            check_finite(state.global_step, args.learning_rate, args.output_dir, applied=True, **figures)

    return DivergenceGuard()
