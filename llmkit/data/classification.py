"""Text classification data: column mapping, label names, validation before any training.

Labels may be strings or integers (or a `datasets` ClassLabel); their names are kept and saved
with the model. Problems stop the run with the file, the row (1-based) and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.config import opt
from llmkit.data.loading import SourceConfig, open_sources, split_and_cap
from llmkit.errors import DataError


@dataclass
class ClassifyDataConfig(SourceConfig):
    path: str = opt("reviews", "Training data: bundled name (reviews), JSONL/CSV/Parquet file, saved dataset dir or hub id.")
    text_column: str = opt("text", "Column holding the text.")
    text_pair_column: str | None = opt(None, "Optional second text column (sentence pairs).")
    label_column: str = opt("label", "Column holding the label (string or integer).")


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
    train, train_source, test, test_source = open_sources(cfg)
    train_texts = _texts(train, cfg, train_source)
    raw_train = _column(train, cfg.label_column, train_source, "label")
    names = _label_names(train, cfg, raw_train, train_source)
    if len(names) < 2:
        raise DataError(f"{train_source}: column `{cfg.label_column}` has only one label ({names[0]!r}); need two or more")
    train_rows = list(zip(train_texts, _encode(raw_train, names, train, cfg, train_source, train_source)))
    test_rows = None
    if test is not None:
        raw_test = _column(test, cfg.label_column, test_source, "label")
        test_rows = list(zip(_texts(test, cfg, test_source), _encode(raw_test, names, test, cfg, test_source, train_source)))
    train_rows, test_rows, held_out = split_and_cap(cfg, train_rows, test_rows, train_source, seed)
    return ClassifyData(train_texts=[t for t, _ in train_rows], train_labels=[y for _, y in train_rows],
                        test_texts=[t for t, _ in test_rows], test_labels=[y for _, y in test_rows],
                        labels=names, train_source=train_source, test_source=held_out or test_source)
