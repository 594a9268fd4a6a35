"""One entry point per recipe kind, and the function that turns YAML + overrides into a config.

A recipe YAML names its kind (`kind: classify`); `RECIPES[kind]` gives the config dataclass,
the default method and the `run(cfg, out)` entry point. Adding a kind is one line here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmkit.config import build, expand_aliases, load_yaml, merge, parse_overrides
from llmkit.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    kind: str
    summary: str
    config_cls: Callable[[], type]
    run: Callable[[Any, Path], dict]
    default_method: str


def _classify_cls():
    from llmkit.recipes.classify import ClassifyConfig

    return ClassifyConfig


def _classify_run(cfg, out):
    from llmkit.recipes.classify import run

    return run(cfg, out)


def _sft_cls():
    from llmkit.recipes.sft import SFTConfig

    return SFTConfig


def _sft_run(cfg, out):
    from llmkit.recipes.sft import run

    return run(cfg, out)


def _reward_cls():
    from llmkit.recipes.reward import RewardConfig

    return RewardConfig


def _reward_run(cfg, out):
    from llmkit.recipes.reward import run

    return run(cfg, out)


def _ppo_cls():
    from llmkit.recipes.ppo import PPOConfig

    return PPOConfig


def _ppo_run(cfg, out):
    from llmkit.recipes.ppo import run

    return run(cfg, out)


RECIPES = {
    "classify": Recipe("classify", "text classification on an encoder or decoder (feature-based, finetune I/II, ...)",
                       _classify_cls, _classify_run, default_method="full"),
    "sft": Recipe("sft", "supervised finetuning of a causal LM on instructions, chats or text (TRL SFTTrainer)",
                  _sft_cls, _sft_run, default_method="lora"),
    "reward": Recipe("reward", "a Bradley-Terry reward model on ranked or pairwise preferences (TRL RewardTrainer)",
                     _reward_cls, _reward_run, default_method="full"),
    "ppo": Recipe("ppo", "PPO against a reward model or a reward function, KL-penalised to the SFT model (llmkit's own loop)",
                  _ppo_cls, _ppo_run, default_method="lora"),
}


def get_recipe(kind: Any, source: str) -> Recipe:
    if kind is None:
        raise ConfigError(f"{source}: no `kind:` key; set it to one of: {', '.join(RECIPES)}")
    if kind == "eval":
        raise ConfigError(f"{source} is an evaluation suite (`kind: eval`); run it with `llmkit eval {source}`")
    if kind == "pipeline":
        raise ConfigError(f"{source} is a pipeline (`kind: pipeline`); run it with `llmkit pipeline {source}`")
    if kind not in RECIPES:
        near = difflib.get_close_matches(str(kind), list(RECIPES), n=1)
        hint = f" (did you mean `{near[0]}`?)" if near else ""
        raise ConfigError(f"{source}: `kind` has bad value {kind!r}{hint}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[kind]


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
    cfg = build(recipe.config_cls(), merged, section_types={"method": method.config_cls})
    cfg.output.dir = cfg.output.dir.format(kind=recipe.kind, method=method.name)
    return recipe, cfg
