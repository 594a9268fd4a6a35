"""Load tables of records through `datasets`: JSONL/JSON, CSV, Parquet, saved dataset directories,
llmkit's bundled sets, and hub dataset ids (offline: fail fast with a message).

    load_table("data/train.jsonl")             -> Dataset
    load_splits("imdb")                        -> DatasetDict (hub id; needs network or a cache)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from llmkit.config import opt
from llmkit.errors import ConfigError, DataError
from llmkit.hub import hub_reachable, is_path_like

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED = {"reviews": BUNDLED_DIR / "reviews", "instructions": BUNDLED_DIR / "instructions",
           "preferences": BUNDLED_DIR / "preferences"}  # name -> <split>.jsonl files
EXTENSIONS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _quiet():
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def _first_bad_json_line(path: Path) -> str | None:
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                return f"{path}: line {i}: not valid JSON ({e.msg})"
            if not isinstance(record, dict):
                return f"{path}: line {i}: expected a JSON object, got {type(record).__name__}"
    return None


def _load_file(path: Path):
    import datasets

    builder = EXTENSIONS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown data file type {path.suffix!r}; use one of {', '.join(EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if builder == "json":
        bad = _first_bad_json_line(path) if path.suffix.lower() == ".jsonl" else None
        if bad:
            raise DataError(bad)
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as e:  # datasets raises many types; name the file and keep the cause
        raise DataError(f"{path}: could not be read as {builder}: {str(e).splitlines()[0]}") from None


def load_splits(path: str) -> dict:
    """Every split a source holds: {"train": Dataset, "test": Dataset, ...}.

    A single file is one split named "train". A bundled name or a directory of `<split>.jsonl`
    files gives one split per file.
    """
    import datasets

    _quiet()
    if path in BUNDLED:
        return {p.stem: _load_file(p) for p in sorted(BUNDLED[path].glob("*.jsonl"))}
    if is_path_like(path) or Path(path).suffix.lower() in EXTENSIONS:
        p = Path(os.path.expanduser(path))
        if not p.exists():
            raise DataError(f"data file not found: {path}")
        if p.is_file():
            return {"train": _load_file(p)}
        if (p / "dataset_dict.json").is_file() or (p / "dataset_info.json").is_file() or (p / "state.json").is_file():
            loaded = datasets.load_from_disk(str(p))
            return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        files = [f for f in sorted(p.iterdir()) if f.suffix.lower() in EXTENSIONS]
        if not files:
            raise DataError(f"{p}: a directory with no data files (.jsonl, .csv, .parquet) and no saved dataset")
        return {f.stem: _load_file(f) for f in files}
    # A hub dataset id.
    if not hub_reachable():
        try:
            import datasets.config as dcfg

            dcfg.HF_HUB_OFFLINE = True  # let datasets answer from its cache without retrying the network
            return dict(datasets.load_dataset(path))
        except Exception:
            raise DataError(
                f"dataset `{path}` is not a local file or directory, is not in the datasets cache, and "
                f"the hub cannot be reached (no network, or HF_HUB_OFFLINE is set). Pass a local file "
                f"instead: data.path=path/to/train.jsonl (JSONL, CSV or Parquet) and optionally "
                f"data.test_path=path/to/test.jsonl"
            ) from None
    try:
        return dict(datasets.load_dataset(path))
    except Exception as e:
        raise DataError(f"dataset `{path}` could not be loaded from the hub: {str(e).splitlines()[0]}") from None


def load_table(path: str, split: str | None = None):
    """One split of a source (the only one for a single file)."""
    splits = load_splits(path)
    if split is None:
        if len(splits) == 1:
            return next(iter(splits.values()))
        split = "train"
    if split not in splits:
        raise DataError(f"{path}: no split `{split}`; it has: {', '.join(splits)}")
    return splits[split]


def holdout(n: int, test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, test indices): a seeded random share `test_size` of n rows held out."""
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(test_size * n))
    return order[n_test:], order[:n_test]


# ----------------------------------------------------------------------------- train / test sources


@dataclass
class SourceConfig:
    """Where a recipe's training and test rows come from; each recipe's data config extends it."""

    path: str = opt("reviews", "Training data: bundled name, JSONL/CSV/Parquet file, saved dataset dir or hub id.")
    test_path: str | None = opt(None, "Test data; default: the source's test split, else a held-out share of `path`.")
    train_split: str = opt("train", "Split of `path` to train on.")
    test_split: str = opt("test", "Split used for testing when `path` (or `test_path`) has one.")
    test_size: float = opt(0.2, "Fraction held out for testing when there is no test split.")
    max_train_samples: int | None = opt(None, "Use only the first N training rows (smoke runs).")
    max_test_samples: int | None = opt(None, "Use only the first N test rows.")

    def validate(self) -> None:
        if not 0 < self.test_size < 1:
            raise ConfigError(f"data.test_size must be in (0, 1), got {self.test_size}")
        for key in ("max_train_samples", "max_test_samples"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {v}")


def open_sources(cfg: SourceConfig):
    """-> (train Dataset, its name, test Dataset or None, its name or None). None: hold out rows."""
    splits = load_splits(cfg.path)
    if cfg.train_split not in splits:
        raise DataError(f"{cfg.path}: no split `{cfg.train_split}`; it has: {', '.join(splits)} (set data.train_split)")
    train = splits[cfg.train_split]
    train_source = f"{cfg.path} [{cfg.train_split}]" if len(splits) > 1 else cfg.path
    if len(train) == 0:
        raise DataError(f"{train_source}: no training rows")
    if cfg.test_path:
        test_splits = load_splits(cfg.test_path)
        key = cfg.test_split if cfg.test_split in test_splits else next(iter(test_splits))
        return train, train_source, test_splits[key], cfg.test_path
    if cfg.test_split in splits and cfg.test_split != cfg.train_split:
        return train, train_source, splits[cfg.test_split], f"{cfg.path} [{cfg.test_split}]"
    return train, train_source, None, None


def split_and_cap(cfg: SourceConfig, train: list, test: list | None, train_source: str, seed: int):
    """Hold out a seeded share of `train` when there is no `test`, then apply the sample caps.
    -> (train, test, test source suffix or None)."""
    held_out = None
    if test is None:
        if len(train) < 2:
            raise DataError(f"{train_source}: needs at least 2 rows to hold out a test split")
        train_idx, test_idx = holdout(len(train), cfg.test_size, seed)
        train, test = [train[i] for i in train_idx], [train[i] for i in test_idx]
        held_out = f"{train_source} (held-out {cfg.test_size:.0%})"
    return train[:cfg.max_train_samples or None], test[:cfg.max_test_samples or None], held_out
