"""Experiment tracking: `train.report_to=[tensorboard,wandb]` sends every history.jsonl row to
TensorBoard (`output_dir/tensorboard/<run>/`) and to Weights & Biases (`output_dir/wandb/`, offline
unless `WANDB_MODE` says otherwise; `wandb sync output_dir/wandb/offline-run-*` uploads it later),
with the resolved config as the run's hyper-parameters. Every training kind (classify, sft, reward,
ppo) logs this way:

    llmkit train recipes/sft/lora.yaml train.report_to=[tensorboard]
    tensorboard --logdir runs/sft-lora/tensorboard

Why mirror history.jsonl instead of handing `report_to` to the HF Trainer: classify and PPO run
loops of their own, so one mirror gives every kind the same metric names and steps, and a tracker
shows exactly what history.jsonl holds. The writers are Accelerate's tracker classes
(`accelerate.tracking`), not code of ours. A resumed run appends to the same TensorBoard directory
(TensorBoard shows the last value logged at a step) and starts a new offline W&B run.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
from pathlib import Path

from llmkit.errors import ConfigError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # tracker -> the package it needs


def check(names: list[str], key: str = "train.report_to") -> None:
    """Config-time check: known trackers, their packages installed (no import). `none` alone is no
    tracker, as with transformers' report_to."""
    if names == ["none"]:
        return
    for name in names:
        if name not in PACKAGES:
            near = difflib.get_close_matches(name, list(PACKAGES), n=1)
            hint = f" (did you mean `{near[0]}`?)" if near else ""
            raise ConfigError(f"`{key}` has bad value {name!r}{hint}; choose from: {', '.join(PACKAGES)} (or [] for none)")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(f"`{key}`: {name} needs the `{PACKAGES[name]}` package: pip install {PACKAGES[name]} "
                              f"(make setup installs it)")
    if len(set(names)) != len(names):
        raise ConfigError(f"`{key}` names a tracker twice: {names}")


def _flat(config: dict, prefix: str = "") -> dict:
    """Nested config -> {"train.learning_rate": 5e-05, ...}; values a tracker's hparams accept."""
    flat = {}
    for k, v in config.items():
        if isinstance(v, dict):
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat


class Trackers:
    """The trackers named in report_to, started for one run; `log` takes a history row."""

    def __init__(self, names: list[str], out: Path, config: dict):
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        self.trackers = []
        run = Path(out).name
        for name in names:
            if name == "tensorboard":
                tracker = TensorBoardTracker(run, Path(out) / "tensorboard")
            else:
                os.environ.setdefault("WANDB_MODE", "offline")  # these machines reach no server; sync later
                tracker = WandBTracker(os.environ.get("WANDB_PROJECT", "llmkit"), name=run, dir=str(out))
            tracker.start()
            tracker.store_init_configuration(_flat(config))
            self.trackers.append(tracker)

    def log(self, record: dict, key: str) -> None:
        values = {k: v for k, v in record.items() if k != key and isinstance(v, (int, float))
                  and not isinstance(v, bool) and math.isfinite(v)}
        for tracker in self.trackers:
            tracker.log(values, step=int(record[key]))

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def open_trackers(names: list[str], out: Path, config: dict) -> Trackers | None:
    """Trackers for a run on the main process, or None when report_to is empty."""
    names = [n for n in names if n != "none"]
    return Trackers(names, out, config) if names else None
