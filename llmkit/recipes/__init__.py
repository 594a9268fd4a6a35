"""Recipe kinds: one record per kind behind one registry, like the methods.

A recipe YAML names its kind (`kind: sft`). Each kind's module exports `RECIPE = Recipe(...)`,
which holds everything kind-specific: the config dataclass, the entry point, the default method,
the file that says a run finished, the pipeline's progress line, report section and results
rows, the memory counter, and what the kind's runs accept (DeepSpeed/FSDP profiles, autocast).
The CLI, `llmkit pipeline`, the pipeline report and `estimate-memory` read kinds from here only.

Adding a kind is one module that exports RECIPE plus one line in `KINDS` below. The line holds
the module's import path, the verb that runs the kind and a one-line summary for `llmkit train --help`
(so the help, the verbs and `--print-config` of one kind never import the other kinds' modules, and
torch through them).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from llmkit.config import build, expand_aliases, load_yaml, merge, parse_overrides
from llmkit.errors import ConfigError

KINDS = {  # kind: (module exporting RECIPE, verb, summary); `llmkit train` runs the kinds whose verb is "train"
    "classify": ("llmkit.recipes.classify", "train", "text classification on an encoder or decoder (feature-based, finetune I/II, ...)"),
    "sft": ("llmkit.recipes.sft", "train", "supervised finetuning of a causal LM on instructions, chats or text (TRL SFTTrainer)"),
    "reward": ("llmkit.recipes.reward", "train", "a Bradley-Terry reward model on ranked or pairwise preferences (TRL RewardTrainer)"),
    "ppo": ("llmkit.recipes.ppo", "train", "PPO against a reward model or a reward function, KL-penalised to the SFT model (llmkit's own loop)"),
    "self_instruct": ("llmkit.selfinstruct.pipeline", "generate", "Self-Instruct: grow an instruction set from seed tasks (llmkit generate)"),
    "eval": ("llmkit.eval.suite", "eval", "an evaluation suite: generate and score, or score a predictions file (llmkit eval)"),
    "compare": ("llmkit.compare", "compare", "finished runs side by side (llmkit compare)"),
}


@dataclass(frozen=True)
class Compared:
    """What `llmkit compare` shows for runs of a kind: the headline figure (the first of `headline`
    that the runs have), plotted against trainable parameters and training time when `costs`, and more
    columns, blank where a run lacks one."""

    headline: tuple[str, ...]
    higher_is_better: bool
    columns: tuple[tuple[str, str], ...] = ()  # (metrics.json key, column label)
    costs: bool = True  # the run trained: trainable_params and train_seconds are required and plotted against


@dataclass(frozen=True)
class Recipe:
    kind: str
    verb: str  # the llmkit verb that runs it: train, generate, eval, compare
    config_cls: type | None = None  # the typed config (None: the verb takes no recipe file)
    run: Callable[..., dict] | None = None  # train: run(cfg, out) -> metrics; generate/eval: run(cfg)
    load: Callable[[Any, list], Any] | None = None  # (path, overrides) -> cfg, for kinds with their own loader
    default_method: str | None = None  # train kinds: `method.name` when the recipe names none
    done_file: str = "metrics.json"  # written last: a run is finished when it exists
    report_file: str = "report.md"  # the run's own report
    # the pipeline: its progress line from the done file, its report section, its rows in the results table
    summary_line: Callable[[dict], str] | None = None
    section: Callable[[list, Any, Path], tuple[str, list[str]]] | None = None  # (stages, pipeline, root)
    grouped: bool = False  # True: one section for every stage of the kind (placed at the first)
    headline: Callable[[list, Any], list[list[str]]] | None = None  # (stages of the kind, pipeline) -> rows
    # estimate-memory: count_memory(cfg, num_gpus, checkpointing request, notes) -> see llmkit.memory.estimate_recipe
    count_memory: Callable | None = None
    sharded: bool = True  # runs under the DeepSpeed / FSDP launcher profiles (else one process or DDP only)
    autocast: bool = True  # trains in the launcher's mixed precision (else fp32 as loaded)
    trainer_batching: bool = True  # micro batch derived from train.batch_size; train.gradient_checkpointing applies
    compare: Compared | None = None  # llmkit compare: the kind's figures side by side

    @property
    def summary(self) -> str:
        return KINDS[self.kind][2]


@cache
def get(kind: str) -> Recipe:
    """The record of a registered kind (imports its module)."""
    module, verb, _ = KINDS[kind]
    recipe = importlib.import_module(module).RECIPE
    if (recipe.kind, recipe.verb) != (kind, verb):
        raise RuntimeError(f"{module}.RECIPE is kind {recipe.kind!r} run by {recipe.verb!r}, registered as {kind!r} "
                           f"run by {verb!r}")
    return recipe


def for_verb(verb: str) -> Recipe:
    """The kind a non-train verb runs (generate -> self_instruct, eval -> eval, compare -> compare)."""
    return next(get(k) for k, (_, v, _) in KINDS.items() if v == verb)


def verbs() -> tuple[str, ...]:
    """The verbs that run a kind, in registry order (train first): what a pipeline stage can `run`."""
    return tuple(dict.fromkeys(v for _, v, _ in KINDS.values()))


def train_kinds() -> list[str]:
    return [k for k, (_, v, _) in KINDS.items() if v == "train"]


def get_recipe(kind: Any, source: str) -> Recipe:
    """The record of the kind a recipe file for `llmkit train` names; ConfigError naming the file otherwise."""
    trainable = train_kinds()
    if kind is None:
        raise ConfigError(f"{source}: no `kind:` key; set it to one of: {', '.join(trainable)}")
    if kind == "pipeline":
        raise ConfigError(f"{source} is a pipeline (`kind: pipeline`); run it with `llmkit pipeline {source}`")
    if kind in KINDS and kind not in trainable:
        raise ConfigError(f"{source} is a recipe of kind `{kind}`; run it with `llmkit {KINDS[kind][1]} {source}`")
    if kind not in KINDS:
        near = difflib.get_close_matches(str(kind), trainable, n=1)
        hint = f" (did you mean `{near[0]}`?)" if near else ""
        raise ConfigError(f"{source}: `kind` has bad value {kind!r}{hint}; choose one of: {', '.join(trainable)}")
    return get(kind)


def load_config(path: str | Path, overrides: list[str] = ()) -> tuple[Recipe, Any]:
    """dataclass defaults < YAML < overrides -> (recipe, typed config). Raises ConfigError."""
    from llmkit.methods import get_method

    raw = expand_aliases(load_yaml(path))
    over = expand_aliases(parse_overrides(list(overrides)))
    if "kind" in over and over["kind"] != raw.get("kind"):
        raise ConfigError("`kind` cannot be overridden on the command line; use a recipe file of that kind")
    raw_method, over_method = raw.get("method"), over.get("method")
    if (isinstance(raw_method, dict) and isinstance(over_method, dict) and "name" in over_method
            and over_method["name"] != raw_method.get("name")):
        # Switching method on the command line: the YAML's settings belong to the other method.
        raw = {k: v for k, v in raw.items() if k != "method"}
    merged = merge(raw, over)
    recipe = get_recipe(merged.get("kind"), str(path))
    method_section = merged.get("method", {})
    if not isinstance(method_section, dict):
        raise ConfigError(f"`method` must be a section or a method name, got {method_section!r}")
    method = get_method(method_section.get("name", recipe.default_method))
    merged.setdefault("method", {})["name"] = method.name
    cfg = build(recipe.config_cls, merged, section_types={"method": method.config_cls})
    cfg.output.dir = cfg.output.dir.format(kind=recipe.kind, method=method.name)
    return recipe, cfg
