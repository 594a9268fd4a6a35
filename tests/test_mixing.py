"""Dataset mixing (a list `data.path` for SFT): every source in its own format, samples counts and weights
honoured exactly, test rows held out per source before sampling, bad entries named before any loading."""

import json
from collections import Counter

import pytest
import yaml

from llmkit.data.mixing import Entry, counts, parse, take
from llmkit.data.sft import SFTDataConfig, prepare
from llmkit.errors import ConfigError
from llmkit.recipes import load_config


@pytest.fixture
def sources(tmp_path, write_jsonl):
    msgs = write_jsonl("chat.jsonl", [{"messages": [{"role": "user", "content": f"chat {i}"},
                                                    {"role": "assistant", "content": f"reply {i}"}]} for i in range(40)])
    pc = write_jsonl("pc.jsonl", [{"prompt": f"say {i}", "completion": f"{i}"} for i in range(10)])
    csv = tmp_path / "text.csv"
    csv.write_text("text\n" + "".join(f"line number {i}\n" for i in range(20)))
    return str(msgs), str(pc), str(csv)


def origin(row) -> str:
    return "chat" if "messages" in row else "pc" if "prompt" in row else "text"


def test_each_source_keeps_its_format_and_its_count(sources):
    msgs, pc, csv = sources
    data = prepare(SFTDataConfig(path=[msgs, {"path": pc, "samples": 25}, {"path": csv, "samples": 5}], test_size=0.1))
    got = Counter(origin(r) for r in data.train)
    assert got == {"chat": 36, "pc": 25, "text": 5}  # 40 - 4 held out; 9 rows repeated to 25; 5 of 18
    assert data.format == "messages+prompt_completion+text"
    assert [p["train_rows"] for p in data.mix] == [36, 25, 5] and [p["test_rows"] for p in data.mix] == [4, 1, 2]
    pcs = Counter(r["prompt"] for r in data.train if "prompt" in r)
    assert len(pcs) == 9 and set(pcs.values()) <= {2, 3}  # every row twice, 7 of them a third time
    # no test row is trained on: each source held out its rows before sampling
    key = json.dumps
    assert not {key(r) for r in data.test} & {key(r) for r in data.train}
    assert Counter(origin(r) for r in data.test) == {"chat": 4, "pc": 1, "text": 2}
    again = prepare(SFTDataConfig(path=[msgs, {"path": pc, "samples": 25}, {"path": csv, "samples": 5}], test_size=0.1))
    assert again.train == data.train  # seeded


def test_weights_share_the_mixture(sources):
    msgs, pc, csv = sources
    data = prepare(SFTDataConfig(path=[{"path": msgs, "weight": 3}, {"path": pc, "weight": 1}], max_train_samples=40,
                                 max_test_samples=3))
    assert Counter(origin(r) for r in data.train) == {"chat": 30, "pc": 10} and len(data.test) == 3
    assert counts([Entry("a", weight=1), Entry("b", weight=1), Entry("c", weight=1)], [5, 5, 5], 10) in (
        [4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert counts([Entry("a", weight=2), Entry("b", weight=1)], [100, 2], None) == [68, 34]  # all rows together


def test_take_subsets_without_repeats_and_repeats_whole_sets():
    import random

    rows = list(range(10))
    sub = take(rows, 4, random.Random(0))
    assert len(set(sub)) == 4
    big = Counter(take(rows, 23, random.Random(0)))
    assert sorted(big.values()) == [2] * 7 + [3] * 3


def test_a_test_path_trains_on_every_source_row(sources, write_jsonl):
    msgs, pc, _ = sources
    test = write_jsonl("test.jsonl", [{"prompt": "held", "completion": "out"}] * 3)
    data = prepare(SFTDataConfig(path=[msgs, pc], test_path=str(test)))
    assert len(data.train) == 50 and len(data.test) == 3 and data.test_source == str(test)


@pytest.mark.parametrize("value, needle", [
    ([], "is an empty list"),
    (["a.jsonl", {"path": "b.jsonl", "wieght": 2}], r"unknown key `data.path\[1\].wieght` \(did you mean `data.path\[1\].weight`"),
    ([{"samples": 3}], r"`data.path\[0\]` needs a `path`"),
    ([{"path": "a", "samples": 3, "weight": 1}], "sets both samples and weight"),
    ([{"path": "a", "weight": 1}, "b"], r"`data.path\[1\]` has no weight but other entries do"),
    (["a", "a"], r"`data.path\[1\]` repeats `data.path\[0\]`"),
    ([{"path": "a", "weight": 0}], r"`data.path\[0\].weight` must be a number > 0"),
    ([{"path": "a", "samples": 2.5}], r"`data.path\[0\].samples` must be an integer >= 1"),
    ([3], r"`data.path\[0\]` must be a path or a mapping"),
])
def test_bad_entries_are_named(value, needle):
    with pytest.raises(ConfigError, match=needle):
        parse(value)


def test_bad_mixture_stops_at_the_config(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"kind": "sft", "data": {"path": ["instructions", {"path": "x.jsonl", "smaples": 3}]}}))
    with pytest.raises(ConfigError, match=r"did you mean `data.path\[1\].samples`"):
        load_config(recipe)
    with pytest.raises(ConfigError, match="`data.path` must be a string"):  # classify reads one source
        load_config("recipes/classify/lora.yaml", ["data.path=[reviews, x.csv]"])
    _, cfg = load_config("recipes/sft/lora.yaml", ["data.path=[instructions, {path: a.jsonl, samples: 3}]"])
    assert cfg.data.path == ["instructions", {"path": "a.jsonl", "samples": 3}]


def test_cli_mixture_run_reports_its_sources_and_how_it_was_made(tmp_path, sources, run_cli):
    msgs, pc, csv = sources
    out = tmp_path / "run"
    mixture = f"data.path=[instructions, {{path: {pc}, samples: 30}}, {{path: {csv}, weight: 1}}]"
    res = run_cli("train", "recipes/sft/lora.yaml", "model=tiny-llama", mixture, "data.max_test_samples=6",
                  "train.max_steps=3", "train.batch_size=4", "eval.num_generate=3", "eval.max_new_tokens=2",
                  f"output_dir={out}")
    assert res.returncode == 2 and "has no weight but other entries do" in res.stderr  # before anything is written
    assert not out.exists()
    mixture = mixture.replace("weight: 1", "samples: 7")
    res = run_cli("train", "recipes/sft/lora.yaml", "model=tiny-llama", mixture, "data.max_test_samples=6",
                  "train.max_steps=3", "train.batch_size=4", "eval.num_generate=3", "eval.max_new_tokens=2",
                  f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert [p["train_rows"] for p in m["data_mix"]] == [3000, 30, 7] and m["num_train"] == 3037
    report = (out / "report.md").read_text()
    assert f"| `{pc}` | train | 9 | 30 |" in report
    how = report[report.index("## How this run was made"):]
    assert "llmkit train recipes/sft/lora.yaml model=tiny-llama" in how and "samples: 7" in how
    assert (out / "config.yaml").read_text().strip() in how
    assert len([json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]) == 3  # every step
    # the report's prompts are the user's words, not the chat template's tokens
    for s in map(json.loads, (out / "generations.jsonl").read_text().splitlines()):
        assert "<|" not in s["prompt"] and s["prompt"].strip()
