"""Self-Instruct seed tasks: llmkit's own bundled set, or any file in the reference format.

A seed file is JSON Lines, one task per line (blank lines are skipped):

    {"id": "llmkit_seed_0", "name": "review_sentiment", "instruction": "Classify ...",
     "instances": [{"input": "...", "output": "..."}], "is_classification": true}

This is the format of the 175 seed tasks released with Self-Instruct (arXiv:2212.10560), so that
file loads as it is: `load_seeds("path/to/seed_tasks.jsonl")`. Extra keys are ignored.

    load_seeds()            -> llmkit's bundled seed set (also `load_seeds("llmkit")`)
    load_seeds(path)        -> any file in the same format
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmkit.errors import DataError

BUNDLED_SEEDS = Path(__file__).resolve().parents[1] / "data" / "bundled" / "self_instruct" / "seed_tasks.jsonl"

KEYS = ("id", "name", "instruction", "instances", "is_classification")


@dataclass
class SeedTask:
    id: str
    name: str
    instruction: str
    instances: list[dict]  # [{"input": str, "output": str}, ...]; input may be ""
    is_classification: bool


def _check(record: object, where: str) -> SeedTask:
    """The record as a SeedTask, or DataError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in KEYS:
        if key not in record:
            raise DataError(f"{where}: missing key `{key}`")
    for key in ("id", "name", "instruction"):
        value = record[key]
        if not isinstance(value, str):
            raise DataError(f"{where}: `{key}` must be a string, got {type(value).__name__}")
    if not record["id"].strip():
        raise DataError(f"{where}: `id` is empty")
    if not record["instruction"].strip():
        raise DataError(f"{where}: `instruction` is empty")
    instances = record["instances"]
    if not isinstance(instances, list) or not instances:
        raise DataError(f"{where}: `instances` must be a non-empty list of {{\"input\", \"output\"}} objects")
    for j, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise DataError(f"{where}: instances[{j}] must be an object with `input` and `output`")
        for key in ("input", "output"):
            if not isinstance(inst.get(key), str):
                got = "missing" if key not in inst else type(inst[key]).__name__
                raise DataError(f"{where}: instances[{j}].{key} must be a string ({got})")
    if not isinstance(record["is_classification"], bool):
        raise DataError(f"{where}: `is_classification` must be true or false, "
                        f"got {record['is_classification']!r}")
    return SeedTask(id=record["id"], name=record["name"], instruction=record["instruction"],
                    instances=[{"input": i["input"], "output": i["output"]} for i in instances],
                    is_classification=record["is_classification"])


def load_seeds(path: str | Path | None = None) -> list[SeedTask]:
    """Read and validate a seed file; None or "llmkit" means the bundled set.

    Raises DataError naming the file, the line and the problem (bad JSON, a missing key, a wrong
    type, a duplicate id), or for a missing or empty file."""
    path = BUNDLED_SEEDS if path is None or str(path) == "llmkit" else Path(path)
    if not path.is_file():
        raise DataError(f"seed file not found: {path}")
    tasks: list[SeedTask] = []
    first_line: dict[str, int] = {}  # id -> line it first appeared on
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})") from None
            task = _check(record, where)
            if task.id in first_line:
                raise DataError(f"{where}: duplicate id `{task.id}` (first on line {first_line[task.id]})")
            first_line[task.id] = lineno
            tasks.append(task)
    if not tasks:
        raise DataError(f"{path}: no seed tasks (the file is empty)")
    return tasks
