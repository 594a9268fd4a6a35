"""The Hugging Face Trainer glue the Trainer-based kinds (sft, reward) share: their run directory and
resume point, the trainer arguments from llmkit's `train` section, history.jsonl, the divergence
guard, and run counters that survive a resume.

Why counters of llmkit's own: the Trainer's `training_loss` is the loss summed over *this session's*
steps divided by this session's steps (a run resumed from its final checkpoint reports 0.0, one resumed
half way the second half's mean), and its timer knows this session only, so a resumed run's tokens/s
divided every token by the resumed seconds (2,418 against ~680 steady, issue 15). `Progress` keeps the
loss sum, the training seconds and the steady-state tokens and seconds in the checkpoint's
trainer_state.json (`stateful_callbacks`, written with every checkpoint) and takes them back when a run
resumes, so a resumed run's metrics.json is the uninterrupted run's. The Trainer's own restore of
callback state (`restore_callback_states_from_checkpoint`) would replace the callback object that the
trainer class below holds, so `Progress` reads its saved state itself in `on_train_begin`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from llmkit import faults
from llmkit.trackers import open_trackers
from llmkit.tracking import (
    History,
    PeakMemory,
    checkpoint_step,
    last_checkpoint,
    prepare_output_dir,
)

SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}  # llmkit's -> HF's


@dataclass
class RunDir:
    """An opened run directory: where the Trainer checkpoints, where it resumes from, its history."""

    checkpoints: Path
    resume: str | None
    history: History


def open_run(out: Path, config: dict, train, overwrite: bool, state) -> RunDir:
    """Make (or take back) `out` on the main process, find the newest complete checkpoint when
    train.resume is on, and open history.jsonl (lines past the resumed step dropped)."""
    if state.is_main_process:
        prepare_output_dir(out, config, overwrite=overwrite)
    state.wait_for_everyone()
    ckpt = out / "checkpoints"
    resume, step = last_checkpoint(ckpt) if train.resume else (None, None)
    named = getattr(train, "resume_from_checkpoint", None)
    if named and not _continues(resume, step, named, ckpt):
        resume, step = named, checkpoint_step(named)
    if resume:
        state.print(f"resuming from {resume} (step {step})")
    tracked = open_trackers(train.report_to, out, config) if state.is_main_process else None
    return RunDir(ckpt, resume, History(out / "history.jsonl", resume_step=step, trackers=tracked))


def _continues(own: str | None, own_step: int | None, named: str, ckpt: Path) -> bool:
    """Whether this run's newest checkpoint continues a run that started from the named one: it is
    newer, and the named one lies outside this run (naming one of its own checkpoints goes back to it)."""
    inside = Path(named).resolve().is_relative_to(ckpt.resolve())
    return own is not None and not inside and own_step > checkpoint_step(named)


def eval_args(t, eval_batch_size: int) -> dict:
    """TrainingArguments for evaluation while training and keeping the best step (train.eval_steps,
    early_stopping_patience, keep_best). The Trainer can only go back to a step it checkpointed, so
    with keep_best the checkpoints fall on evaluations (save_steps 0: every one)."""
    if not t.eval_steps:
        return {"eval_strategy": "no"}
    best = t.best_kept()
    return {"eval_strategy": "steps", "eval_steps": t.eval_steps, "per_device_eval_batch_size": eval_batch_size,
            "prediction_loss_only": True, "load_best_model_at_end": best,
            "metric_for_best_model": "eval_loss", "greater_is_better": False,
            **({"save_strategy": "steps", "save_steps": t.save_steps or t.eval_steps} if best else {})}


def early_stopping(t) -> list:
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience)] if t.early_stopping_patience else []


def training_args(config_cls, t, run: RunDir, state, method_name: str, eval_batch_size: int = 32, **kind_args):
    """TRL's SFTConfig / RewardConfig (`config_cls`) from llmkit's train section `t`, for the launch
    `state` and the method (whether it may checkpoint activations); `kind_args` are the kind's own
    (max_length, packing, center_rewards_coefficient, ...)."""
    from llmkit import distributed
    from llmkit.methods import gradient_checkpointing_allowed

    micro, accum = t.batch_plan(state.num_processes)
    precision = distributed.mixed_precision(t.mixed_precision)
    schedule = {"save_strategy": "steps" if t.save_steps else "epoch", "save_steps": t.save_steps or 500,
                **(eval_args(t, eval_batch_size) if hasattr(t, "eval_steps") else {})}  # keep_best moves the saves
    return config_cls(
        output_dir=str(run.checkpoints), per_device_train_batch_size=micro, gradient_accumulation_steps=accum,
        learning_rate=t.learning_rate, num_train_epochs=t.epochs, max_steps=t.max_steps,
        lr_scheduler_type=SCHEDULERS[t.lr_scheduler], warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm or 1e9, seed=t.seed, data_seed=t.seed,
        logging_steps=t.logging_steps or 0.01,  # below 1 the Trainer takes a share of the run's steps: ~100 lines
        **schedule, save_total_limit=1,  # with keep_best the Trainer also keeps the best one
        report_to="none", activation_checkpointing=gradient_checkpointing_allowed(method_name, t.gradient_checkpointing),
        gradient_checkpointing=False,
        bf16=precision == "bf16", fp16=precision == "fp16", **distributed.trainer_args(),
        include_num_input_tokens_seen="non_padding",
        logging_nan_inf_filter=False,  # else the Trainer logs a NaN loss as the previous mean (the guard needs it)
        dataloader_num_workers=0, disable_tqdm=not state.is_main_process, **kind_args)


def history_callback(history: History, extra: tuple[str, ...] = (), on_eval=None):
    """Trainer logs -> history.jsonl, one object per logging step: step, epoch, loss, lr, grad_norm and
    the `extra` log keys the kind's trainer adds, where present; and one per evaluation while training:
    the Trainer's eval_* figures plus what `on_eval(model)` measures (main process only)."""
    from transformers import TrainerCallback

    class HistoryCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and state.is_world_process_zero:
                history.log(step=state.global_step, epoch=round(state.epoch or 0, 3), loss=logs["loss"],
                            lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                            **{k: logs[k] for k in extra if k in logs})

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if not state.is_world_process_zero or not metrics or not state.global_step:
                return
            row = {k: v for k, v in metrics.items() if k.startswith("eval_") and not k.endswith(("_runtime", "_per_second", "_num_tokens"))}
            history.log(step=state.global_step, epoch=round(state.epoch or 0, 3), **row,
                        **(on_eval(model) if on_eval is not None else {}))

    return HistoryCallback()


def progress_callback(skip: int = 5):
    """A `Progress` callback (a factory: transformers is imported only when a run trains)."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class Progress(TrainerCallback, ExportableState):
        """Loss sum, training seconds, and the tokens and seconds of steady-state steps (each session's
        first `skip` + 1 steps left out: optimizer creation, first-step allocation), over every session
        of a run."""

        def __init__(self, skip: int = 5):
            self.skip, self.loss_sum, self.seconds, self.steady_tokens, self.steady_seconds = skip, 0.0, 0.0, 0, 0.0
            self._pending, self._t0, self._last, self._steps = None, None, None, 0

        def add_loss(self, loss) -> None:  # each micro batch's loss as the Trainer sums it (already / accumulation)
            loss = loss.detach().float()
            self._pending = loss if self._pending is None else self._pending + loss

        def total_loss(self) -> float:
            if self._pending is not None:
                self.loss_sum += float(self._pending)
                self._pending = None
            return self.loss_sum

        def elapsed(self) -> float:
            return self.seconds + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

        def state(self) -> dict:
            return {"args": {"skip": self.skip},
                    "attributes": {"loss_sum": self.total_loss(), "seconds": self.elapsed(),
                                   "steady_tokens": self.steady_tokens, "steady_seconds": self.steady_seconds}}

        def on_train_begin(self, args, state, control, **kwargs):
            saved = (state.stateful_callbacks or {}).get(type(self).__name__) if state.global_step else None
            if isinstance(saved, dict):  # resumed: the counters as the checkpoint left them
                for k, v in saved["attributes"].items():
                    setattr(self, k, v)
            self._t0, self._last, self._steps = time.perf_counter(), None, 0

        def on_step_end(self, args, state, control, **kwargs):
            now, tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)
            self._steps += 1
            if self._last is not None and self._steps > self.skip + 1:
                self.steady_tokens += tokens - self._last[1]
                self.steady_seconds += now - self._last[0]
            self._last = (now, tokens)

        def on_save(self, args, state, control, **kwargs):
            faults.point("train")

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds, self._t0 = self.elapsed(), None

    return Progress(skip)


def counted(trainer_cls, progress):
    """`trainer_cls` that hands each micro batch's loss to `progress` and has a kill point inside each
    checkpoint save (the weights written, trainer_state.json not yet)."""

    class Counted(trainer_cls):
        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            progress.add_loss(loss)
            return loss

        def save_model(self, output_dir=None, _internal_call=False):
            super().save_model(output_dir, _internal_call)
            if _internal_call:
                faults.point("checkpoint")

    Counted.__name__ = Counted.__qualname__ = trainer_cls.__name__
    return Counted


def train(trainer, run: RunDir, progress) -> dict:
    """trainer.train() from the resume point, under the peak-memory probe -> the run's counters for
    metrics.json, over all its sessions."""
    from llmkit import distributed

    with PeakMemory() as mem:
        trainer.train(resume_from_checkpoint=run.resume)
    run.history.close()
    distributed.check_world_size(trainer.accelerator.num_processes)
    st = trainer.state
    steps, tokens, seconds = st.global_step, int(st.num_input_tokens_seen or 0), progress.seconds
    best = {}
    if st.best_model_checkpoint:  # keep_best: the weights now in the model are that step's
        best = {"best_step": int(Path(st.best_model_checkpoint).name.split("-")[-1]), "best_eval_loss": st.best_metric,
                "stopped_early": bool(st.max_steps and steps < st.max_steps)}
    return {**best,
        "train_loss": progress.total_loss() / steps if steps else None,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "steady_tokens_per_second": (round(progress.steady_tokens / progress.steady_seconds, 1)
                                     if progress.steady_seconds else None),
        "train_tokens": tokens, "train_seconds": round(seconds, 2),
        "peak_memory_mb": mem.mb, "peak_memory_kind": mem.kind, "optimizer_steps": steps,
    }
