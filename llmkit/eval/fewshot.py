"""In-context learning: k demonstrations before each evaluated prompt (Brown et al. 2020, "Language
Models are Few-Shot Learners", arXiv:2005.14165; Raschka's Q19, the first way of using an LLM).

The demonstrations are (prompt, reference) pairs drawn from a split the evaluation never scores (the
training split by default), seeded per evaluated row, either from the row's own task family (the
`task_column` value; the bundled instructions name one of 12) or from any row. For chat prompts they
become earlier turns of the conversation, after any system turns of the evaluated prompt:

    [system?] user: demo prompt 1 / assistant: demo answer 1 / ... / user: the evaluated prompt

which is how an instruction-tuned model sees examples, and its chat template renders them as such.
A plain-string prompt gets them as text: "demo prompt" + "demo answer" + a blank line, k times.
k = 0 is zero-shot: the prompt as it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from llmkit.config import opt
from llmkit.errors import ConfigError, DataError


@dataclass
class FewShotConfig:
    k: int = opt(0, "Demonstrations before each prompt, as earlier user/assistant turns (0: zero-shot).")
    path: str | None = opt(None, "Where the demonstrations come from (default: data.path).")
    split: str = opt("train", "Split of `path` the demonstrations come from; it must not be the evaluated one.")
    same_task: bool = opt(True, "Draw demonstrations from rows of the prompt's own task family (`task_column`); false: from any row.")
    task_column: str = opt("task", "Column that names a row's task family (used with same_task).")
    seed: int = opt(42, "Seed of the draw (each evaluated row draws its own, so a resumed run draws the same).")

    def validate(self) -> None:
        if self.k < 0:
            raise ConfigError(f"fewshot.k must be >= 0, got {self.k}")


def draw(pool: list[dict], k: int, *, seed: int, index: int, task: str | None, exclude) -> list[dict]:
    """k rows of `pool` for evaluated row `index`: those of `task` when given, never `exclude`'s prompt."""
    rows = [r for r in pool if (task is None or r["task"] == task) and r["prompt"] != exclude]
    if len(rows) < k:
        raise DataError(f"fewshot: {len(rows)} demonstration rows{f' of task {task!r}' if task else ''} for k={k}")
    return random.Random(f"{seed}:{index}").sample(rows, k)


def with_demonstrations(prompt, demos: list[dict]):
    """The prompt with `demos` ({"prompt", "reference"}) before it: chat turns, or text for a string."""
    if not demos:
        return prompt
    if isinstance(prompt, str):
        return "".join(f"{_text(d['prompt'])}{d['reference']}\n\n" for d in demos) + prompt
    system = [m for m in prompt if m["role"] == "system"]
    turns = []
    for d in demos:
        body = [m for m in d["prompt"] if m["role"] != "system"] if isinstance(d["prompt"], list) else \
            [{"role": "user", "content": d["prompt"]}]
        turns += body + [{"role": "assistant", "content": d["reference"]}]
    return system + turns + [m for m in prompt if m["role"] != "system"]


def _text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt if m["role"] != "system") + "\n"


def apply(examples: list[dict], pool: list[dict], cfg: FewShotConfig) -> list[dict]:
    """`examples` ({"prompt", "references", "task"?}) with k demonstrations from `pool` in each prompt;
    each example keeps its own prompt as `query` (what the report shows)."""
    out = []
    for i, e in enumerate(examples):
        task = e.get("task") if cfg.same_task else None
        demos = draw(pool, cfg.k, seed=cfg.seed, index=i, task=task, exclude=e["prompt"])
        out.append({**e, "query": e["prompt"], "prompt": with_demonstrations(e["prompt"], demos)})
    return out
