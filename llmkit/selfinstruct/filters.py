"""Self-Instruct's heuristic filters, as pure functions that return reason codes.

Instruction rules (Self-Instruct, arXiv:2212.10560 §2.3; the released `bootstrap_instructions.py`),
checked in this order, the first failing one named:

    empty               nothing left after stripping
    too_short/too_long  keep min_words..max_words whitespace-separated words (default 4..150)
    blacklist           a whole-word, case-insensitive hit on a word a text-only model cannot serve
    write_a_program     starts with a forbidden prefix ("write a program": it left unclear
                        whether code or a direct answer was wanted)
    leading_punctuation the first character is ASCII punctuation
    non_ascii_start     the first character is not ASCII (a crude non-English filter)

The novelty rule (ROUGE-L against the pool, `rouge_threshold`) lives in the novelty index; its
threshold is validated here so that one config section holds every filter setting.

Instance rules (the reference's `prepare_for_finetuning.py`) are in `filter_instances`.
"""

from __future__ import annotations

import functools
import random
import re
import string
from collections import Counter
from dataclasses import dataclass

from llmkit.config import opt
from llmkit.errors import ConfigError

# Tasks a text-only model cannot do (the 13 words of the reference).
DEFAULT_BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                     "map", "maps", "draw", "plot", "go to"]

REASONS: dict[str, str] = {
    # instruction rules, in the order they are checked
    "empty": "empty instruction",
    "too_short": "fewer words than filters.min_words",
    "too_long": "more words than filters.max_words",
    "blacklist": "contains a blacklisted word (a task a text-only model cannot do)",
    "write_a_program": "starts with a forbidden prefix (default: 'write a program')",
    "leading_punctuation": "starts with a punctuation character",
    "non_ascii_start": "starts with a non-ASCII character",
    "rouge_similar": "near-duplicate of an instruction already in the pool (ROUGE-L above filters.rouge_threshold)",
    "unparseable": "the model's reply could not be parsed",
    # instance rules, in the order they are applied
    "truncated": "last instance of a reply cut off at the token limit",
    "empty_output": "instance with an empty output",
    "input_equals_output": "instance whose output repeats its input",
    "unfinished": "instance whose input or output ends with ':' (an unfinished generation)",
    "conflicting_outputs": "task dropped: two instances share an input but differ in output",
    "duplicate": "exact duplicate of another instance",
    "over_max": "more instances than filters.max_instances (a random sample is kept)",
}


@dataclass
class FilterConfig:
    min_words: int = opt(4, "Reject instructions with fewer words (whitespace split).")
    max_words: int = opt(150, "Reject instructions with more words.")
    blacklist: list[str] = opt(help="Reject instructions containing any of these (whole words, any case; "
                                    "multi-word entries allowed).", factory=lambda: list(DEFAULT_BLACKLIST))
    forbid_prefixes: list[str] = opt(help="Reject instructions starting with any of these (any case).",
                                     factory=lambda: ["write a program"])
    forbid_leading_punctuation: bool = opt(True, "Reject instructions whose first character is punctuation.")
    require_ascii_first_char: bool = opt(True, "Reject instructions whose first character is not ASCII.")
    rouge_threshold: float = opt(0.7, "Reject an instruction whose ROUGE-L F1 with any pool instruction is "
                                      "above this (0 < t <= 1).")
    max_instances: int = opt(5, "Keep at most this many instances per task (a seeded random sample).")

    def validate(self) -> None:
        checks = [
            ("min_words", self.min_words >= 1, "must be >= 1"),
            ("max_words", self.max_words >= self.min_words, f"must be >= filters.min_words ({self.min_words})"),
            ("blacklist", all(isinstance(w, str) and w.strip() for w in self.blacklist),
             "must hold non-empty strings"),
            ("forbid_prefixes", all(isinstance(p, str) and p.strip() for p in self.forbid_prefixes),
             "must hold non-empty strings"),
            ("rouge_threshold", 0 < self.rouge_threshold <= 1, "must be in (0, 1]"),
            ("max_instances", self.max_instances >= 1, "must be >= 1"),
        ]
        for key, ok, why in checks:
            if not ok:
                raise ConfigError(f"filters.{key} {why}, got {getattr(self, key)!r}")


@functools.lru_cache(maxsize=8)
def _blacklist_pattern(words: tuple[str, ...]) -> re.Pattern:
    # "go to" must match "go  to" and "Go To" but not "ago to" or "go tomorrow".
    alternatives = [r"\s+".join(map(re.escape, w.split())) for w in words]
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def instruction_rejection(text: str, cfg: FilterConfig) -> str | None:
    """The first rule the instruction fails, as a reason code (see REASONS), or None if it passes."""
    text = text.strip()
    if not text:
        return "empty"
    n_words = len(text.split())
    if n_words < cfg.min_words:
        return "too_short"
    if n_words > cfg.max_words:
        return "too_long"
    if cfg.blacklist and _blacklist_pattern(tuple(cfg.blacklist)).search(text):
        return "blacklist"
    lowered = text.lower()
    if any(lowered.startswith(p.lower()) for p in cfg.forbid_prefixes):
        return "write_a_program"
    if cfg.forbid_leading_punctuation and text[0] in string.punctuation:
        return "leading_punctuation"
    if cfg.require_ascii_first_char and not text[0].isascii():
        return "non_ascii_start"
    return None


def filter_instances(instances: list[dict], *, truncated: bool, cfg: FilterConfig,
                     rng: random.Random) -> tuple[list[dict], Counter]:
    """Apply the reference's instance rules to one task's parsed instances.

    In order: drop the last instance of a reply cut at the token limit; drop instances with an empty
    output, an output equal to the input, or an input or output ending in ':'; if two instances share
    a non-empty input but differ in output, drop them all (the task is ambiguous); drop exact
    duplicates; keep at most cfg.max_instances, sampled with `rng` (kept in their original order).

    Returns (kept instances, Counter of reason code -> number of instances dropped for it)."""
    dropped: Counter = Counter()
    items = list(instances)
    if truncated and items:
        items.pop()
        dropped["truncated"] += 1

    valid = []
    for inst in items:
        inp, out = inst["input"].strip(), inst["output"].strip()
        # Empty output is checked first so an all-empty instance is reported as empty, not as a repeat.
        reason = ("empty_output" if not out else "input_equals_output" if inp == out
                  else "unfinished" if inp.endswith(":") or out.endswith(":") else None)
        if reason:
            dropped[reason] += 1
        else:
            valid.append(inst)

    outputs_by_input: dict[str, set[str]] = {}
    for inst in valid:
        inp = inst["input"].strip()
        if inp:
            outputs_by_input.setdefault(inp, set()).add(inst["output"].strip())
    if any(len(outs) > 1 for outs in outputs_by_input.values()):
        dropped["conflicting_outputs"] += len(valid)
        return [], dropped

    seen: set[tuple[str, str]] = set()
    unique = []
    for inst in valid:
        key = (inst["input"].strip(), inst["output"].strip())
        if key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            unique.append(inst)

    if len(unique) > cfg.max_instances:
        keep = sorted(rng.sample(range(len(unique)), cfg.max_instances))
        dropped["over_max"] += len(unique) - cfg.max_instances
        unique = [unique[i] for i in keep]
    return unique, dropped
