"""The bundled `instructions` SFT set: the shipped files are exactly what the generator writes, every
task family is in both splits, no prompt is in both, and `check` scores answers by exact match.
Runs in about a second (no model, no network)."""

import importlib.util
import json
from pathlib import Path

import pytest

BUNDLED = Path(__file__).resolve().parents[1] / "llmkit" / "data" / "bundled"
SPLITS = ("train", "test")


def _load_generator():
    # By file path, so the test does not depend on importing the whole llmkit package.
    spec = importlib.util.spec_from_file_location("make_instructions", BUNDLED / "make_instructions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mi = _load_generator()


@pytest.fixture(scope="module")
def shipped():
    return {s: [json.loads(line) for line in (BUNDLED / "instructions" / f"{s}.jsonl").read_text(
        encoding="utf-8").splitlines()] for s in SPLITS}


@pytest.fixture(scope="module")
def regenerated():
    return dict(zip(SPLITS, mi.generate()))


@pytest.mark.parametrize("split", SPLITS)
def test_generator_reproduces_shipped_files_byte_for_byte(regenerated, split):
    shipped_bytes = (BUNDLED / "instructions" / f"{split}.jsonl").read_bytes()
    assert mi.to_jsonl(regenerated[split]).encode("utf-8") == shipped_bytes, (
        f"{split}.jsonl is stale: run `python -m llmkit.data.bundled.make_instructions`")


def test_generation_is_deterministic_and_seed_dependent(regenerated):
    assert dict(zip(SPLITS, mi.generate(mi.SEED))) == regenerated
    assert mi.generate(mi.SEED + 1)[1] != regenerated["test"]


def test_counts(shipped):
    assert len(shipped["train"]) == mi.N_TRAIN_PER_FAMILY * len(mi.FAMILIES) == 3000
    assert len(shipped["test"]) == mi.N_TEST_PER_FAMILY * len(mi.FAMILIES) == 204
    assert 8 <= len(mi.FAMILIES) <= 12


@pytest.mark.parametrize("split", SPLITS)
def test_every_family_in_every_split_in_equal_numbers(shipped, split):
    per = mi.N_TRAIN_PER_FAMILY if split == "train" else mi.N_TEST_PER_FAMILY
    counts = {f: sum(r["task"] == f for r in shipped[split]) for f in mi.FAMILIES}
    assert counts == dict.fromkeys(mi.FAMILIES, per)


@pytest.mark.parametrize("split", SPLITS)
def test_records_are_well_formed(shipped, split):
    for i, r in enumerate(shipped[split], 1):
        where = f"{split} row {i}"
        assert set(r) == {"messages", "task", "answer"}, f"{where}: keys {sorted(r)}"
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"], where
        assert all(set(m) == {"role", "content"} for m in r["messages"]), where
        user, assistant = r["messages"]
        assert assistant["content"] == r["answer"], f"{where}: last message is not the answer"
        assert user["content"].strip() == user["content"] != "", where
        assert r["answer"].strip() == r["answer"] != "", where
        assert (user["content"] + r["answer"]).isascii(), f"{where}: non-ASCII text"
        assert len(r["answer"].split()) <= 8 and len(r["answer"]) <= 40, f"{where}: answer too long"


def test_no_prompt_in_both_splits_or_twice(shipped):
    prompts = {s: [r["messages"][0]["content"] for r in shipped[s]] for s in SPLITS}
    for s in SPLITS:
        assert len(set(prompts[s])) == len(prompts[s]), f"duplicate prompt in {s}"
    assert not set(prompts["train"]) & set(prompts["test"])


def test_answers_are_correct_for_spot_checks():
    assert mi.number_to_words(0) == "zero" and mi.number_to_words(40) == "forty"
    assert mi.number_to_words(42) == "forty-two" and mi.number_to_words(19) == "nineteen"
    assert [mi.plural(w) for w in ("cat", "box", "church", "brush", "city", "key", "bus")] == [
        "cats", "boxes", "churches", "brushes", "cities", "keys", "buses"]
    words = [w for pair in mi.ANTONYMS for w in pair]
    assert len(words) == len(set(words)), "a word in two antonym pairs has two answers"


def test_every_answer_recomputes_from_its_prompt(shipped):
    """Parse the numbers and words back out of the prompts of the arithmetic-like families."""
    import re

    for r in shipped["train"] + shipped["test"]:
        prompt, answer = r["messages"][0]["content"], r["answer"]
        nums = [int(x) for x in re.findall(r"\d+", prompt)]
        if r["task"] == "add":
            assert answer == str(sum(nums)), prompt
        elif r["task"] == "compare":
            want = max(nums) if re.search(r"larger|bigger|greater", prompt) else min(nums)
            assert answer == str(want), prompt
        elif r["task"] == "sort":
            down = re.search(r"largest to|descending|decreasing|largest first", prompt)
            assert answer == ", ".join(map(str, sorted(nums, reverse=bool(down)))), prompt
        elif r["task"] == "number_words":
            assert answer == mi.number_to_words(nums[0]), prompt
        elif r["task"] == "to_json":
            assert json.loads(answer) == {k: int(v) if v.isdigit() else v
                                          for k, v in re.findall(r"(\w+)=(\w+)", prompt.replace("key=value", ""))}, prompt


@pytest.mark.parametrize("family", mi.FAMILIES)
def test_check_accepts_the_answer_and_rejects_a_wrong_one(shipped, family):
    for r in [r for r in shipped["test"] if r["task"] == family]:
        assert mi.check(r, r["answer"])
        assert mi.check(r, f"  {r['answer']}\n")  # surrounding whitespace is ignored
        assert not mi.check(r, r["answer"] + "x")
        assert not mi.check(r, "")
        other = next(o["answer"] for o in shipped["test"] if o["task"] == family and o["answer"] != r["answer"])
        assert not mi.check(r, other)
    # Case and punctuation count.
    r = next(r for r in shipped["test"] if r["task"] == family)
    assert not mi.check(r, r["answer"] + ".")
    if r["answer"].upper() != r["answer"]:
        assert not mi.check(r, r["answer"].upper())
