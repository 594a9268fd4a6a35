"""Several training sources in one run: `data.path` as a list (SFT).

    data:
      path:
        - instructions                                   # every row
        - {path: runs/gen/finetune.jsonl, samples: 500}  # 500 rows (repeated when the file has fewer)
        - {path: chats.parquet, split: train}

    data.path=[instructions,extra.csv]                   # the same on the command line

Each entry is a path (anything `data.path` takes: bundled name, JSONL/CSV/Parquet file, directory,
saved dataset, hub id) or a mapping with `path` and optionally `split`, and one of:
    samples: N     take N rows: a seeded random subset, or every row repeated and a random remainder
    weight: W      a share of the mixture, W / (sum of weights); the mixture has as many rows as the
                   sources together, or data.max_train_samples. Every entry gets a weight, or none does.
Each source is read in its own format (an SFT source's format is detected from its columns, so
`messages`, `prompt`/`completion` and `text` rows mix). Each source's test rows are its test split,
else a held-out share (`data.test_size`) taken before sampling, so no test row is trained on; with
`data.test_path` every row trains. The mixture is shuffled with the run's seed.

This is LLaMA-Factory's `dataset: a,b` with `interleave_probs` and axolotl's `datasets:` list, written
over lists of rows: the rows are already in memory and checked one by one, so `datasets`'
`interleave_datasets` would add a copy and nothing else.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable
from dataclasses import dataclass

from llmkit.errors import ConfigError, DataError

ENTRY_KEYS = ("path", "split", "samples", "weight")


@dataclass(frozen=True)
class Entry:
    path: str
    split: str | None = None
    samples: int | None = None
    weight: float | None = None

    def name(self, split: str, splits: int) -> str:
        return f"{self.path} [{split}]" if self.split or splits > 1 else self.path


def _number(value, key: str, integer: bool):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"`{key}` must be {'an integer >= 1' if integer else 'a number > 0'}, got {value!r}")
    return value


def parse(value, key: str = "data.path") -> list[Entry] | None:
    """The entries of a list `data.path` (None for a single path). Raises ConfigError naming the entry."""
    if not isinstance(value, list):
        return None
    if not value:
        raise ConfigError(f"`{key}` is an empty list; give a path, or a list of paths or {{path: ...}} entries")
    entries = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ConfigError(f"`{where}` must be a path or a mapping with `path`, got {item!r}")
        for k in item:
            if k not in ENTRY_KEYS:
                near = difflib.get_close_matches(str(k), ENTRY_KEYS, n=1)
                raise ConfigError(f"unknown key `{where}.{k}`" + (f" (did you mean `{where}.{near[0]}`?)" if near else
                                                                  f"; an entry takes {', '.join(ENTRY_KEYS)}"))
        if not isinstance(item.get("path"), str) or not item["path"].strip():
            raise ConfigError(f"`{where}` needs a `path` (a file, directory, bundled name or hub id)")
        if "samples" in item and "weight" in item:
            raise ConfigError(f"`{where}` sets both samples and weight; give one")
        split = item.get("split")
        if split is not None and not isinstance(split, str):
            raise ConfigError(f"`{where}.split` must be a split name, got {split!r}")
        entries.append(Entry(path=item["path"], split=split,
                             samples=_number(item["samples"], f"{where}.samples", True) if "samples" in item else None,
                             weight=_number(item["weight"], f"{where}.weight", False) if "weight" in item else None))
    weighted = [e.weight is not None for e in entries]
    if any(weighted) and not all(weighted):
        i = weighted.index(False)
        raise ConfigError(f"`{key}[{i}]` has no weight but other entries do: give every entry a weight "
                          "(shares of the mixture), or use samples counts")
    seen = {}
    for i, e in enumerate(entries):
        if (e.path, e.split) in seen:
            raise ConfigError(f"`{key}[{i}]` repeats `{key}[{seen[e.path, e.split]}]` ({e.path}); to use a source "
                              "more often give it `samples` or a larger `weight`")
        seen[e.path, e.split] = i
    return entries


def counts(entries: list[Entry], sizes: list[int], total: int | None) -> list[int]:
    """Rows to take from each source. Weights share `total` (default: all rows together) by largest
    remainder, so the counts add up to it exactly."""
    if entries[0].weight is None:
        return [e.samples or n for e, n in zip(entries, sizes)]
    total = total or sum(sizes)
    w = sum(e.weight for e in entries)
    exact = [total * e.weight / w for e in entries]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[:total - sum(out)]:
        out[i] += 1
    return out


def take(rows: list, n: int, rng: random.Random) -> list:
    """n rows: a random subset when n <= len(rows), else every row (n // len) times and a random rest."""
    whole, rest = divmod(n, len(rows))
    return rows * whole + rng.sample(rows, rest)


@dataclass
class Mixed:
    train: list
    test: list
    train_source: str
    test_source: str
    parts: list[dict]  # per source: path, split, rows (its training rows), train_rows and test_rows used


def mix(cfg, entries: list[Entry], read: Callable[[object, str], list], seed: int) -> Mixed:
    """Read every source with `read(dataset, source name) -> rows`, hold out its test rows, sample and
    shuffle. `cfg` is the recipe's data section (test_path, test_split, train_split, test_size, caps)."""
    from llmkit.data.loading import holdout, load_splits

    rng = random.Random(seed)
    trains, tests, names, used_splits = [], [], [], []
    for i, e in enumerate(entries):
        splits = load_splits(e.path)
        split = e.split or (cfg.train_split if cfg.train_split in splits else next(iter(splits)))
        if split not in splits:
            raise DataError(f"{e.path} (data.path[{i}]): no split `{split}`; it has: {', '.join(splits)}")
        name = e.name(split, len(splits))
        rows = read(splits[split], name)
        if not rows:
            raise DataError(f"{name} (data.path[{i}]): no training rows")
        if cfg.test_path:
            test = []
        elif cfg.test_split in splits and cfg.test_split != split:
            test = read(splits[cfg.test_split], f"{e.path} [{cfg.test_split}]")
        else:
            if len(rows) < 2:
                raise DataError(f"{name} (data.path[{i}]): needs at least 2 rows to hold out test rows")
            train_idx, test_idx = holdout(len(rows), cfg.test_size, seed)
            rows, test = [rows[j] for j in train_idx], [rows[j] for j in test_idx]
        trains.append(rows)
        tests.append(test)
        names.append(name)
        used_splits.append(split)
    n = counts(entries, [len(r) for r in trains], cfg.max_train_samples)
    for i, (k, e) in enumerate(zip(n, entries)):
        if k == 0:
            raise DataError(f"{names[i]} (data.path[{i}]): weight {e.weight} gives it 0 rows of the mixture; raise it")
    tagged = [(i, row) for i, (rows, k) in enumerate(zip(trains, n)) for row in take(rows, k, rng)]
    rng.shuffle(tagged)
    tagged = tagged[:cfg.max_train_samples or None]  # without weights the cap applies to the whole mixture
    n = [sum(1 for i, _ in tagged if i == j) for j in range(len(entries))]
    train = [row for _, row in tagged]
    if cfg.test_path:
        test_splits = load_splits(cfg.test_path)
        key = cfg.test_split if cfg.test_split in test_splits else next(iter(test_splits))
        test, test_source = read(test_splits[key], cfg.test_path), cfg.test_path
        rng.shuffle(test)
        test = test[:cfg.max_test_samples or None]
        n_test = [0] * len(entries)
    else:
        tagged = [(i, row) for i, rows in enumerate(tests) for row in rows]
        rng.shuffle(tagged)
        tagged = tagged[:cfg.max_test_samples or None]
        n_test = [sum(1 for i, _ in tagged if i == j) for j in range(len(entries))]
        test = [row for _, row in tagged]
        test_source = " + ".join(f"{name} ({k:,})" for name, k in zip(names, n_test))
    parts = [{"path": e.path, "split": split, "rows": len(r), "train_rows": k, "test_rows": t}
             for e, split, r, k, t in zip(entries, used_splits, trains, n, n_test)]
    train_source = " + ".join(f"{name} ({k:,} of {len(r):,} rows)" for name, r, k in zip(names, trains, n))
    return Mixed(train=train, test=test, train_source=train_source, test_source=test_source, parts=parts)
