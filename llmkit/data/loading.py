"""Load tables of records through `datasets`: JSONL/JSON, CSV, Parquet, saved dataset directories,
llmkit's bundled sets, and hub dataset ids (offline: fail fast with a message).

    load_table("data/train.jsonl")             -> Dataset
    load_splits("imdb")                        -> DatasetDict (hub id; needs network or a cache)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmkit.errors import DataError
from llmkit.hub import hub_reachable, is_path_like

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED = {"reviews": BUNDLED_DIR / "reviews", "instructions": BUNDLED_DIR / "instructions"}  # name -> <split>.jsonl files
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
