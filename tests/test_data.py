"""Data loading in every supported format, and validation errors that name file and row."""

import json
import time

import pytest
from conftest import toy_rows

from llmkit.data.classification import ClassifyDataConfig, prepare
from llmkit.data.loading import load_splits
from llmkit.errors import DataError


def cfg(path, **kw):
    return ClassifyDataConfig(path=str(path), **kw)


def test_formats_load_the_same_rows(tmp_path, write_jsonl):
    import datasets

    rows = toy_rows(30)
    jsonl = write_jsonl("d.jsonl", rows)
    ds = datasets.Dataset.from_list(rows)
    ds.to_csv(tmp_path / "d.csv", index=False)
    ds.to_parquet(tmp_path / "d.parquet")
    datasets.DatasetDict({"train": ds, "test": ds.select(range(6))}).save_to_disk(tmp_path / "saved")
    for path in (jsonl, tmp_path / "d.csv", tmp_path / "d.parquet"):
        assert load_splits(str(path))["train"]["text"] == [r["text"] for r in rows]
    saved = load_splits(str(tmp_path / "saved"))
    assert set(saved) == {"train", "test"} and len(saved["test"]) == 6


def test_string_and_integer_labels(write_jsonl):
    d = prepare(cfg(write_jsonl("s.jsonl", toy_rows(20))))
    assert d.labels == ["neg", "pos"] and set(d.train_labels) == {0, 1}
    ints = [{"text": r["text"], "label": i % 3} for i, r in enumerate(toy_rows(30))]
    d = prepare(cfg(write_jsonl("i.jsonl", ints)))
    assert d.labels == ["0", "1", "2"]
    assert len(d.train_texts) + len(d.test_texts) == 30  # 20% held out when there is no test split


def test_column_mapping_and_test_file(write_jsonl):
    rows = [{"review": r["text"], "stars": r["label"]} for r in toy_rows(20)]
    train = write_jsonl("train.jsonl", rows)
    test = write_jsonl("test.jsonl", rows[:4])
    d = prepare(cfg(train, test_path=str(test), text_column="review", label_column="stars"))
    assert len(d.train_texts) == 20 and len(d.test_texts) == 4


def test_bundled_reviews_load():
    d = prepare(ClassifyDataConfig())
    assert len(d.train_texts) >= 1000 and len(d.labels) >= 2
    assert d.test_source.endswith("[test]")


@pytest.mark.parametrize("mutate, needle", [
    (lambda rows: [{"body": r["text"], "label": r["label"]} for r in rows], "no text column `text`; columns are: body, label"),
    (lambda rows: rows[:3] + [{"text": "  ", "label": "pos"}] + rows[4:], "row 4: empty or missing text"),
    (lambda rows: rows[:6] + [{"text": "x", "label": None}] + rows[7:], "row 7: missing label"),
    (lambda rows: [dict(r, label="pos") for r in rows], "has only one label"),
])
def test_bad_training_data_names_file_and_row(write_jsonl, mutate, needle):
    path = write_jsonl("bad.jsonl", mutate(toy_rows(20)))
    with pytest.raises(DataError) as e:
        prepare(cfg(path))
    assert str(path) in str(e.value) and needle in str(e.value)


def test_test_label_unseen_in_training(write_jsonl):
    train = write_jsonl("train.jsonl", toy_rows(20))
    test = write_jsonl("test.jsonl", toy_rows(4) + [{"text": "meh", "label": "neutral"}])
    with pytest.raises(DataError) as e:
        prepare(cfg(train, test_path=str(test)))
    msg = str(e.value)
    assert str(test) in msg and "row 5" in msg and "'neutral' never occurs in the training data" in msg


def test_bad_json_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps({"text": "a", "label": "x"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"broken.jsonl: line 2: not valid JSON"):
        load_splits(str(path))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.jsonl"):
        load_splits(str(tmp_path / "nope.jsonl"))
    odd = tmp_path / "data.txt"
    odd.write_text("hello")
    with pytest.raises(DataError, match="unknown data file type '.txt'"):
        load_splits(str(odd))


def test_hub_dataset_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from llmkit import hub

    hub.hub_reachable.cache_clear()
    start = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_splits("someone/not-cached-dataset")
    assert time.perf_counter() - start < 10
    assert "someone/not-cached-dataset" in str(e.value) and "data.path=path/to/train.jsonl" in str(e.value)
    hub.hub_reachable.cache_clear()
