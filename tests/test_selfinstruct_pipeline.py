"""`llmkit generate`: the Self-Instruct pipeline end to end on a tiny real model with the 175
original seed tasks, same seed same run, resume after SIGKILL with nothing lost or duplicated,
stages on their own, the OpenAI backend against a loopback server, bad seed files, and the export
training in the sft recipe."""

import json

import pytest
from conftest import REFERENCE_SEEDS, ROOT, needs_reference_seeds

RECIPE = ROOT / "recipes" / "data" / "self_instruct_pico.yaml"  # the shrunk prompts suit tiny models
# A random-init model never ends its list items, so the test keeps the cut last item of each reply.
TINY = ["backend.model=tiny-llama", "bootstrap.prompts_per_round=4", "bootstrap.max_tokens=24", "bootstrap.patience=5",
        "bootstrap.drop_truncated=false", "instances.max_tokens=24", "backend.batch_size=4"]


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def generate(run_cli, out, *args):
    res = run_cli("generate", RECIPE, *TINY, f"output.dir={out}", *args)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@needs_reference_seeds
def test_end_to_end_with_the_original_seeds(tmp_path, run_cli):
    out = tmp_path / "si"
    generate(run_cli, out, f"seeds={REFERENCE_SEEDS}", "num_instructions=6")
    for name in ("instructions.jsonl", "rejected.jsonl", "prompts.jsonl", "classification.jsonl", "instances.jsonl",
                 "finetune.jsonl", "stats.json", "report.md", "config.yaml", "kept.png"):
        assert (out / name).is_file(), name
    kept = lines(out / "instructions.jsonl")
    assert len(kept) == 6 and len({k["instruction"] for k in kept}) == 6
    for k in kept:  # provenance
        assert k["seed_ids"] and all(s.startswith("seed_task_") for s in k["seed_ids"])
        assert 0 <= k["max_rouge_l"] <= 0.7 and k["model"] == "transformers:tiny-llama"
    assert all(r["reason"] for r in lines(out / "rejected.jsonl"))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["bootstrap"]["kept"] == 6 and stats["num_seeds"] == 175
    assert stats["bootstrap"]["candidates"] == 6 + stats["bootstrap"]["rejected"]
    rows = lines(out / "finetune.jsonl")
    assert sum(r["source"] == "seed" for r in rows) == 175  # one instance per original seed task
    assert all(r["messages"][0]["role"] == "user" and r["messages"][1]["role"] == "assistant" for r in rows)
    report = (out / "report.md").read_text()
    for section in ("## Stages", "## Filters", "kept.png", "verbs.png"):
        assert section in report, section


def test_same_seed_same_run_and_stages_on_their_own(tmp_path, run_cli):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(run_cli, a, "num_instructions=5")
    generate(run_cli, b, "num_instructions=5", "stages=[bootstrap]")
    assert lines(a / "instructions.jsonl") == lines(b / "instructions.jsonl")
    assert not (b / "classification.jsonl").exists()
    res = run_cli("generate", RECIPE, *TINY, f"output.dir={b}", "stages=[instances]")
    assert res.returncode == 2 and "run the classify stage first" in res.stderr
    generate(run_cli, b, "num_instructions=5", "stages=[classify,instances,export]")
    for name in ("classification.jsonl", "instances.jsonl", "finetune.jsonl"):
        assert lines(a / name) == lines(b / name), name
    # Started again with a larger target, a finished run continues.
    generate(run_cli, b, "num_instructions=7")
    assert lines(b / "instructions.jsonl")[:5] == lines(a / "instructions.jsonl")
    assert len(lines(b / "instructions.jsonl")) == 7 and len(lines(b / "classification.jsonl")) == 7


def test_openai_backend_against_a_loopback_server(tmp_path, run_cli):
    from openai_server import OpenAIServer

    out = tmp_path / "oa"
    with OpenAIServer() as server:
        server.fail_next(1, status=429)
        res = run_cli("generate", RECIPE, *TINY, "backend.kind=openai", f"backend.base_url={server.base_url}",
                      "backend.model=tiny-llama", "backend.retry_backoff=0.01", "num_instructions=3", f"output.dir={out}")
        assert res.returncode == 0, res.stderr[-3000:]
        assert server.count > 3
    kept = lines(out / "instructions.jsonl")
    assert len(kept) == 3 and all(k["model"] == "openai:tiny-llama" for k in kept)
    assert len(lines(out / "instances.jsonl")) == 3


def test_bad_seed_file_names_the_line(tmp_path, run_cli):
    good = json.dumps({"id": "a", "name": "a", "instruction": "Say hello to the user politely.",
                       "instances": [{"input": "", "output": "Hello!"}], "is_classification": False})
    bad = tmp_path / "seeds.jsonl"
    bad.write_text(good + "\n\n" + '{"id": "b", "name": "b", "instruction": 3}' + "\n")
    res = run_cli("generate", RECIPE, f"seeds={bad}", f"output.dir={tmp_path / 'o'}")
    assert res.returncode == 2 and f"{bad}: line 3" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("generate", RECIPE, "stages=[bootstrap,typo]", f"output.dir={tmp_path / 'o'}")
    assert res.returncode == 2 and "unknown stage 'typo'" in res.stderr


def test_export_trains_in_the_sft_recipe(tmp_path, run_cli):
    out = tmp_path / "si"
    generate(run_cli, out, "num_instructions=3")
    run = tmp_path / "sft"
    res = run_cli("train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", f"data.path={out / 'finetune.jsonl'}",
                  "train.max_steps=2", "train.batch_size=8", "eval.num_generate=2", "eval.max_new_tokens=4", f"output_dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["optimizer_steps"] == 2


def test_export_writes_machine_tasks_in_the_sft_format(tmp_path, run_cli):
    """Export on its own, from stage files as a finished run leaves them."""
    out = tmp_path / "si"
    out.mkdir()
    (out / "config.yaml").write_text("kind: self_instruct\n")  # a run's directory, as it leaves it
    rec = {"round": 0, "prompt": 0, "max_rouge_l": 0.2, "seed_ids": ["s"], "machine_ids": [], "model": "m"}
    (out / "instructions.jsonl").write_text("".join(json.dumps({"id": f"machine_{i}", "instruction": t, **rec}) + "\n" for i, t in
                                                    enumerate(["Add the two numbers given.", "Is the review positive or negative?"])))
    (out / "classification.jsonl").write_text(json.dumps({"id": "machine_0", "is_classification": False, "raw": " No"}) + "\n"
                                              + json.dumps({"id": "machine_1", "is_classification": True, "raw": " Yes"}) + "\n")
    (out / "instances.jsonl").write_text(
        json.dumps({"id": "machine_0", "instances": [{"input": "2, 3", "output": "5"}], "parsed": 1, "dropped": {},
                    "finish_reason": "stop", "raw": ""}) + "\n"
        + json.dumps({"id": "machine_1", "instances": [], "parsed": 2, "dropped": {"conflicting_outputs": 2},
                      "finish_reason": "stop", "raw": ""}) + "\n")
    res = run_cli("generate", RECIPE, "stages=[export]", "export.include_seeds=false", f"output.dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = lines(out / "finetune.jsonl")
    assert rows == [{"messages": [{"role": "user", "content": "Add the two numbers given.\n\n2, 3"},
                                  {"role": "assistant", "content": "5"}], "task_id": "machine_0", "source": "machine"}]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["classify"] == {"done": 2, "classification": 1, "other": 1}
    assert stats["instances"]["dropped_by"] == {"conflicting_outputs": 2} and stats["export"]["machine_tasks"] == 1


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes" / "data").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_generation_recipes_parse(recipe, run_cli):
    res = run_cli("generate", recipe, "--print-config")
    assert res.returncode == 0 and "num_instructions:" in res.stdout, res.stderr[-1000:]
