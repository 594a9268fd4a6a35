"""Text classification data: column mapping, label names, validation before any training.

Labels may be strings or integers (or a `datasets` ClassLabel); their names are kept and saved
with the model. Problems stop the run with the file, the row (1-based) and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import opt
from llmkit.data.loading import holdout, load_splits
from llmkit.errors import ConfigError, DataError


@dataclass
class ClassifyDataConfig:
    path: str = opt("reviews", "Training data: bundled name (reviews), JSONL/CSV/Parquet file, saved dataset dir or hub id.")
    test_path: str | None = opt(None, "Test data; default: the source's test split, else a split of `path`.")
    train_split: str = opt("train", "Split of `path` to train on.")
    test_split: str = opt("test", "Split used for testing when `path` has one.")
    text_column: str = opt("text", "Column holding the text.")
    text_pair_column: str | None = opt(None, "Optional second text column (sentence pairs).")
    label_column: str = opt("label", "Column holding the label (string or integer).")
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


@dataclass
class ClassifyData:
    train_texts: list
    train_labels: list[int]
    test_texts: list
    test_labels: list[int]
    labels: list[str]
    train_source: str
    test_source: str


def _column(ds, name: str, source: str, role: str) -> list:
    if name not in ds.column_names:
        raise DataError(f"{source}: no {role} column `{name}`; columns are: {', '.join(ds.column_names)} "
                        f"(set data.{role}_column)")
    return ds[name]


def _texts(ds, cfg: ClassifyDataConfig, source: str) -> list:
    texts = _column(ds, cfg.text_column, source, "text")
    pairs = _column(ds, cfg.text_pair_column, source, "text_pair") if cfg.text_pair_column else None
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"{source}: row {i + 1}: empty or missing text in column `{cfg.text_column}`")
    return list(zip(texts, pairs)) if pairs is not None else list(texts)


def _label_names(ds, cfg: ClassifyDataConfig, raw: list, source: str) -> list[str]:
    feature = ds.features.get(cfg.label_column)
    if feature is not None and hasattr(feature, "names"):  # datasets.ClassLabel
        return list(feature.names)
    for i, v in enumerate(raw):
        if v is None or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{source}: row {i + 1}: missing label in column `{cfg.label_column}`")
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise DataError(f"{source}: row {i + 1}: label {v!r} is neither a string nor an integer")
    kinds = {type(v) for v in raw}
    if len(kinds) > 1:
        raise DataError(f"{source}: column `{cfg.label_column}` mixes strings and integers")
    return [str(v) for v in sorted(set(raw))]


def _encode(raw: list, names: list[str], ds, cfg, source: str, train_source: str) -> list[int]:
    feature = ds.features.get(cfg.label_column)
    if feature is not None and hasattr(feature, "names"):
        raw = [feature.names[v] for v in raw]
    index = {n: i for i, n in enumerate(names)}
    out = []
    for i, v in enumerate(raw):
        if v is None:
            raise DataError(f"{source}: row {i + 1}: missing label in column `{cfg.label_column}`")
        key = str(v)
        if key not in index:
            raise DataError(f"{source}: row {i + 1}: label {v!r} never occurs in the training data "
                            f"({train_source}); known labels: {', '.join(names)}")
        out.append(index[key])
    return out


def prepare(cfg: ClassifyDataConfig, seed: int = 42) -> ClassifyData:
    """Load, map columns, validate every row (numbered as in the file), then split if needed."""
    splits = load_splits(cfg.path)
    if cfg.train_split not in splits:
        raise DataError(f"{cfg.path}: no split `{cfg.train_split}`; it has: {', '.join(splits)} (set data.train_split)")
    train = splits[cfg.train_split]
    train_source = f"{cfg.path} [{cfg.train_split}]" if len(splits) > 1 else cfg.path
    if len(train) == 0:
        raise DataError(f"{train_source}: no training rows")
    train_texts = _texts(train, cfg, train_source)
    raw_train = _column(train, cfg.label_column, train_source, "label")
    names = _label_names(train, cfg, raw_train, train_source)
    if len(names) < 2:
        raise DataError(f"{train_source}: column `{cfg.label_column}` has only one label ({names[0]!r}); need two or more")
    train_labels = _encode(raw_train, names, train, cfg, train_source, train_source)

    if cfg.test_path or (cfg.test_split in splits and cfg.test_split != cfg.train_split):
        if cfg.test_path:
            test_splits = load_splits(cfg.test_path)
            key = cfg.test_split if cfg.test_split in test_splits else next(iter(test_splits))
            test, test_source = test_splits[key], cfg.test_path
        else:
            test, test_source = splits[cfg.test_split], f"{cfg.path} [{cfg.test_split}]"
        test_texts = _texts(test, cfg, test_source)
        raw_test = _column(test, cfg.label_column, test_source, "label")
        test_labels = _encode(raw_test, names, test, cfg, test_source, train_source)
    else:  # hold out a seeded random share of the training rows
        if len(train_texts) < 2:
            raise DataError(f"{train_source}: needs at least 2 rows to hold out a test split")
        train_idx, test_idx = holdout(len(train_texts), cfg.test_size, seed)
        test_texts, test_labels = [train_texts[i] for i in test_idx], [train_labels[i] for i in test_idx]
        train_texts, train_labels = [train_texts[i] for i in train_idx], [train_labels[i] for i in train_idx]
        test_source = f"{train_source} (held-out {cfg.test_size:.0%})"
    if cfg.max_train_samples:
        train_texts, train_labels = train_texts[:cfg.max_train_samples], train_labels[:cfg.max_train_samples]
    if cfg.max_test_samples:
        test_texts, test_labels = test_texts[:cfg.max_test_samples], test_labels[:cfg.max_test_samples]
    return ClassifyData(train_texts=train_texts, train_labels=train_labels, test_texts=test_texts,
                        test_labels=test_labels, labels=names, train_source=train_source, test_source=test_source)
