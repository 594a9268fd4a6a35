"""Typed configuration: dataclasses grouped by concern, filled from YAML and `key=value` overrides.

One precedence rule: dataclass default < recipe YAML < command-line `key=value`, with the same
dotted names in both (`train.learning_rate=1e-4`). Everything a user can set is a dataclass field
with its help in `metadata["help"]`; nothing else is accepted. Unknown keys, wrong types and bad
values raise `ConfigError` naming the key and, for a typo, the closest valid key.

Short aliases (top level, documented in the README):
    learning_rate, epochs, max_steps, batch_size, seed -> train.<same>
    output_dir -> output.dir
    model=NAME -> model.name, method=NAME -> method.name, data=PATH -> data.path
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from llmkit.errors import ConfigError

# ----------------------------------------------------------------------------- helpers


def opt(default: Any = MISSING, help: str = "", *, factory: Any = MISSING) -> Any:
    """A dataclass field with its help text (shown by `--print-config`)."""
    meta = {"help": help}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


ALIASES = {
    "learning_rate": "train.learning_rate",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "output_dir": "output.dir",
}
# A section given a scalar fills the section's main field: `model=minilm`.
SECTION_SCALAR = {"model": "name", "method": "name", "data": "path"}


# ----------------------------------------------------------------------------- shared sections


@dataclass
class ModelConfig:
    name: str = opt("minilm", "Short name (minilm, tiny-bert, tiny-gpt2, tiny-llama), local directory or hub id.")
    revision: str | None = opt(None, "Hub revision (branch, tag or commit) when `name` is a hub id.")
    trust_remote_code: bool = opt(False, "Run model code shipped with a hub repo. Off unless you trust it.")
    dtype: Literal["float32", "bfloat16", "float16"] = opt("float32", "Weights dtype when loading.")
    max_length: int = opt(128, "Truncate inputs to this many tokens.")

    def validate(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"model.max_length must be >= 1, got {self.max_length}")


@dataclass
class TrainConfig:
    learning_rate: float = opt(5e-5, "Peak learning rate (AdamW).")
    epochs: float = opt(3.0, "Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = opt(-1, "Optimizer steps to run; -1 means use epochs.")
    batch_size: int = opt(32, "Global batch size (all processes, all accumulation steps together).")
    micro_batch_size: int | None = opt(None, "Most examples per process per forward pass (fewer when batch_size / world size is smaller); accumulation is derived. Default: batch_size / world size.")
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = opt(0.06, "Fraction of steps with linear warm-up.")
    lr_scheduler: Literal["linear", "cosine", "constant"] = opt("linear", "Learning-rate schedule after warm-up.")
    max_grad_norm: float = opt(1.0, "Clip gradients to this global norm (0 disables).")
    seed: int = opt(42, "Random seed for initialisation, shuffling and dropout.")
    logging_steps: int | None = opt(None, "Write a history.jsonl line every N optimizer steps. Default: about 100 lines per run (every step in a run of up to 100 steps), so a short run's curves have points.")
    save_steps: int = opt(0, "Checkpoint every N optimizer steps for resuming (0: at each epoch end).")
    resume: bool = opt(True, "Continue from output_dir/checkpoint when a killed run left one.")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = opt("auto", "Autocast precision. auto: the launcher's (an accelerate profile's `mixed_precision`) on a GPU, no on CPU; no, bf16 or fp16 win over the launcher.")
    gradient_checkpointing: bool = opt(False, "Recompute activations in backward to save memory.")
    report_to: list[str] = opt(factory=list, help="Experiment trackers that get every history.jsonl row: tensorboard, wandb (offline unless WANDB_MODE is set); [] for none.")

    def validate(self) -> None:
        checks = [
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("epochs", self.epochs > 0, "must be > 0"),
            ("max_steps", self.max_steps == -1 or self.max_steps > 0, "must be -1 or > 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("micro_batch_size", self.micro_batch_size is None or self.micro_batch_size >= 1, "must be >= 1"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be >= 0"),
            ("logging_steps", self.logging_steps is None or self.logging_steps >= 1, "must be >= 1 (or null: about 100 lines per run)"),
            ("save_steps", self.save_steps >= 0, "must be >= 0"),
        ]
        for key, ok, why in checks:
            if not ok:
                raise ConfigError(f"train.{key} {why}, got {getattr(self, key)!r}")
        from llmkit import trackers

        trackers.check(self.report_to)

    def log_every(self, total_steps: int) -> int:
        """Optimizer steps between history lines: logging_steps, or about 100 lines over `total_steps`."""
        return self.logging_steps or max(1, -(-total_steps // 100))

    def batch_plan(self, world_size: int) -> tuple[int, int]:
        """(per-process micro batch, accumulation steps) with micro * accum * world == batch_size:
        the global batch stays the same whatever the number of processes. micro_batch_size is a
        ceiling: with more processes each one's share of the batch may be smaller."""
        share = max(1, self.batch_size // world_size)
        micro = min(self.micro_batch_size, share) if self.micro_batch_size else share
        if self.batch_size % (micro * world_size):
            raise ConfigError(f"train.batch_size={self.batch_size} is not a multiple of micro_batch_size={micro} "
                              f"x world size {world_size}")
        return micro, self.batch_size // (micro * world_size)


@dataclass
class EvalLoopConfig(TrainConfig):
    """The train section of the kinds that evaluate while training (classify, sft, reward): held-out
    figures every eval_steps, early stopping and keeping the best weights."""

    eval_steps: int = opt(0, "Evaluate on the held-out split every N optimizer steps (0: only after training). Each evaluation is a history.jsonl row and a point of the report's held-out curve.")
    early_stopping_patience: int = opt(0, "Stop after N evaluations in a row without a lower held-out loss (0: off; needs eval_steps). Implies keep_best.")
    keep_best: bool = opt(False, "At the end, go back to the weights of the evaluation with the lowest held-out loss and save those (needs eval_steps).")

    def validate(self) -> None:
        super().validate()
        if self.eval_steps < 0 or self.early_stopping_patience < 0:
            raise ConfigError(f"train.eval_steps and train.early_stopping_patience must be >= 0, got "
                              f"{self.eval_steps} and {self.early_stopping_patience}")
        if (self.keep_best or self.early_stopping_patience) and not self.eval_steps:
            which = "early_stopping_patience" if self.early_stopping_patience else "keep_best"
            raise ConfigError(f"train.{which} needs train.eval_steps > 0: the best step is chosen among evaluations")

    def best_kept(self) -> bool:
        return self.keep_best or self.early_stopping_patience > 0


@dataclass
class TrainerLoopConfig(EvalLoopConfig):
    """The train section of the kinds that run on the HF Trainer (sft, reward): evaluation while
    training, and a named checkpoint to resume from."""

    resume_from_checkpoint: str | None = opt(None, "A checkpoint directory to continue from (e.g. runs/x/checkpoints/checkpoint-40, from this run or another), instead of the newest one.")

    def validate(self) -> None:
        super().validate()
        if self.best_kept() and self.save_steps % self.eval_steps:
            raise ConfigError(f"train.save_steps={self.save_steps} must be a multiple of train.eval_steps="
                              f"{self.eval_steps} (or 0: a checkpoint at every evaluation), so the best step has one")
        ckpt = self.resume_from_checkpoint
        if ckpt is not None and not (Path(ckpt) / "trainer_state.json").is_file():
            why = "does not exist" if not Path(ckpt).exists() else "holds no trainer_state.json (not a complete checkpoint)"
            raise ConfigError(f"train.resume_from_checkpoint: {ckpt} {why}")


@dataclass
class EvalConfig:
    batch_size: int = opt(64, "Batch size for evaluation and feature extraction.")

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class OutputConfig:
    dir: str = opt("runs/{kind}-{method}", "Output directory; {kind} and {method} are filled in.")
    save_model: bool = opt(True, "Save the trained model (or adapter/classifier) in output_dir/model.")
    overwrite: bool = opt(False, "Allow writing over a finished run in the same directory.")


@dataclass
class MethodConfig:
    """Base of every method's config; each method adds its own fields (llmkit/methods/)."""

    name: str = opt("full", "Adaptation method (see `llmkit train --help`).")


# ----------------------------------------------------------------------------- building from dicts


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def dotted_keys(cls: type, prefix: str = "", section_types: dict[str, type] | None = None) -> list[str]:
    """All settable dotted keys of a config class (sections expanded)."""
    keys = []
    hints = typing.get_type_hints(cls)
    section_types = section_types or {}
    for f in dataclasses.fields(cls):
        tp = section_types.get(prefix + f.name, hints[f.name])
        if _is_dataclass_type(tp):
            keys += dotted_keys(tp, f"{prefix}{f.name}.", section_types)
        else:
            keys.append(prefix + f.name)
    return keys


def _closest(key: str, candidates: list[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not match:
        leaves = {c.rsplit(".", 1)[-1]: c for c in candidates}
        hit = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
        match = [leaves[hit[0]]] if hit else []
    return f" (did you mean `{match[0]}`?)" if match else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; convert command-line strings. Raises ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"`{key}` cannot be null")
    if origin is Literal:
        if value in args:
            return value
        if isinstance(value, str) and value.lower() in args:
            return value.lower()
        choices = ", ".join(map(str, args))
        hint = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        near = f" (did you mean `{hint[0]}`?)" if hint else ""
        raise ConfigError(f"`{key}` has bad value {value!r}; choose one of: {choices}{near}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {value!r}")
        inner = args[0] if args else Any
        return [coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"`{key}` must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"`{key}` must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"`{key}` must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"`{key}` must be a string, got {value!r}")
    raise ConfigError(f"`{key}`: unsupported type {_type_name(tp)}")


def build(cls: type, values: dict, prefix: str = "", all_keys: list[str] | None = None,
          section_types: dict[str, type] | None = None) -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys.

    `section_types` swaps the class of a section by its dotted name (used for `method`,
    whose fields depend on the chosen method).
    """
    section_types = section_types or {}
    all_keys = all_keys if all_keys is not None else dotted_keys(cls, prefix, section_types) + list(ALIASES)
    if not isinstance(values, dict):
        raise ConfigError(f"`{prefix.rstrip('.') or 'config'}` must be a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        full = prefix + str(key)
        if key not in names:
            guess, inner = full, value
            while isinstance(inner, dict) and inner:  # a mistyped section: match what was set inside it
                first = next(iter(inner))
                guess, inner = f"{guess}.{first}", inner[first]
            raise ConfigError(f"unknown key `{full}`{_closest(guess, all_keys)}")
        tp = section_types.get(full, hints[key])
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"`{full}` is a section; set its keys, e.g. `{full}.{dataclasses.fields(tp)[0].name}=...`")
            kwargs[key] = build(tp, value, full + ".", all_keys, section_types)
        else:
            kwargs[key] = coerce(value, tp, full)
    for name, f in names.items():
        full = prefix + name
        tp = section_types.get(full, hints[name])
        if name not in kwargs and _is_dataclass_type(tp):
            kwargs[name] = build(tp, {}, full + ".", all_keys, section_types)
        elif name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"missing required key `{full}`")
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


# ----------------------------------------------------------------------------- YAML + overrides


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          f"save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_overrides(items: list[str]) -> dict:
    """`["train.learning_rate=1e-4", "model=tiny-bert"]` -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override `{item}` is not key=value (e.g. train.learning_rate=1e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override `{item}` has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(out, key, value)
    return out


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            nxt = d[p] = {SECTION_SCALAR.get(p, "name"): nxt}
        d = nxt
    if isinstance(d.get(parts[-1]), dict) and not isinstance(value, dict):
        d[parts[-1]][SECTION_SCALAR.get(parts[-1], "name")] = value
    else:
        d[parts[-1]] = value


def expand_aliases(d: dict) -> dict:
    """Rewrite top-level aliases and scalar sections into their dotted homes (returns a new dict)."""
    out: dict = {}
    for key, value in d.items():
        if key in ALIASES:
            _set_dotted(out, ALIASES[key], value)
        elif key in SECTION_SCALAR and not isinstance(value, dict):
            _set_dotted(out, f"{key}.{SECTION_SCALAR[key]}", value)
        else:
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def describe(obj: Any, indent: int = 0) -> str:
    """The resolved config as YAML with each field's help as a comment (`--print-config`)."""
    lines = []
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        help_ = f.metadata.get("help", "")
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:" + (f"  # {value.__doc__.strip().splitlines()[0]}" if value.__doc__ and not value.__doc__.startswith(type(value).__name__ + "(") else ""))
            lines.append(describe(value, indent + 1))
        else:
            dumped = yaml.safe_dump(value, default_flow_style=True).strip()
            if dumped.endswith("\n..."):
                dumped = dumped[:-4].strip()
            dumped = dumped.removesuffix("...").strip()
            lines.append(f"{pad}{f.name}: {dumped}" + (f"  # {help_}" if help_ else ""))
    return "\n".join(lines)
