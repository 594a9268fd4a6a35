"""The bundled `reviews` classification set: the shipped files are exactly what the generator writes,
and the splits are balanced, clean and disjoint. Runs in well under a second (no model, no network)."""

import importlib.util
import json
from pathlib import Path

import pytest

BUNDLED = Path(__file__).resolve().parents[1] / "llmkit" / "data" / "bundled"
SPLITS = ("train", "test")


def _load_generator():
    # By file path, so the test does not depend on importing the whole llmkit package.
    spec = importlib.util.spec_from_file_location("make_reviews", BUNDLED / "make_reviews.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mr = _load_generator()


@pytest.fixture(scope="module")
def shipped():
    files = {s: BUNDLED / "reviews" / f"{s}.jsonl" for s in SPLITS}
    return {s: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
            for s, f in files.items()}


@pytest.fixture(scope="module")
def regenerated():
    return dict(zip(SPLITS, mr.generate()))


@pytest.mark.parametrize("split", SPLITS)
def test_generator_reproduces_shipped_files_byte_for_byte(regenerated, split):
    shipped_bytes = (BUNDLED / "reviews" / f"{split}.jsonl").read_bytes()
    assert mr.to_jsonl(regenerated[split]).encode("utf-8") == shipped_bytes, (
        f"{split}.jsonl is stale: run `python -m llmkit.data.bundled.make_reviews`")


def test_generation_is_deterministic_and_seed_dependent(regenerated):
    assert dict(zip(SPLITS, mr.generate(mr.SEED))) == regenerated
    assert mr.generate(mr.SEED + 1)[1] != regenerated["test"]


def test_sizes(shipped):
    assert len(shipped["train"]) >= 1000
    assert len(shipped["test"]) >= 300


@pytest.mark.parametrize("split", SPLITS)
def test_records_are_well_formed(shipped, split):
    for i, r in enumerate(shipped[split], 1):
        assert set(r) == {"text", "label"}, f"{split} row {i}: keys {sorted(r)}"
        assert isinstance(r["text"], str) and r["text"].strip() == r["text"] != "", f"{split} row {i}"
        assert r["text"].isascii(), f"{split} row {i}: non-ASCII text"
        assert mr.MIN_WORDS <= len(r["text"].split()) <= mr.MAX_WORDS, f"{split} row {i}: length"
        assert r["label"] in mr.LABELS, f"{split} row {i}: label {r['label']!r}"


@pytest.mark.parametrize("split", SPLITS)
def test_every_label_present_and_balanced(shipped, split):
    rows = shipped[split]
    for label in mr.LABELS:
        share = sum(r["label"] == label for r in rows) / len(rows)
        assert 0.25 <= share <= 0.40, f"{split}: {label} is {share:.1%} of rows"


@pytest.mark.parametrize("split", SPLITS)
def test_no_duplicate_texts_within_a_split(shipped, split):
    texts = [r["text"] for r in shipped[split]]
    assert len(set(texts)) == len(texts)


def test_no_text_in_both_splits(shipped):
    train = {r["text"] for r in shipped["train"]}
    test = {r["text"] for r in shipped["test"]}
    assert not train & test
    # Also after normalising case and whitespace: no near-verbatim leak from train into test.
    norm = lambda t: " ".join(t.lower().split())  # noqa: E731
    assert not {norm(t) for t in train} & {norm(t) for t in test}
