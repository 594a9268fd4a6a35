"""The run-directory lifecycle (llmkit/tracking.py prepare_output_dir): what a run may take back, what it
refuses, and what output.overwrite removes. A refusal writes nothing."""

import json

import pytest
import yaml
from conftest import ROOT

from llmkit.errors import LlmkitError
from llmkit.tracking import prepare_output_dir

CFG = {"kind": "sft", "model": {"name": "tiny-llama"}, "train": {"learning_rate": 0.1, "resume": True},
       "output": {"dir": "x", "overwrite": False}}


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_a_new_or_empty_directory_is_made_and_gets_the_config(tmp_path):
    for out in (tmp_path / "new" / "run", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        prepare_output_dir(out, CFG, overwrite=False)
        assert yaml.safe_load((out / "config.yaml").read_text()) == CFG


def test_an_unfinished_run_with_the_same_settings_is_taken_back(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out, CFG, overwrite=False)
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    moved = {**CFG, "train": {**CFG["train"], "resume": False}, "output": {"dir": "elsewhere", "overwrite": False}}
    prepare_output_dir(out, moved, overwrite=False)  # where it lives and whether it resumes may change
    assert (out / "checkpoints" / "checkpoint-2").is_dir()


@pytest.mark.parametrize("case, needle", [
    ("finished", "already holds a finished run (metrics.json)"),
    ("foreign", "holds files that are not an llmkit run (notes.txt, photo.jpg)"),
    ("other kind", "holds a classify run, not a sft one"),
    ("other settings", "other settings (train.learning_rate: 0.1 -> 0.2)"),
    ("broken config", "config.yaml does not parse"),
    ("not a config", "is not an llmkit run's config"),
])
def test_what_a_run_refuses_and_leaves_untouched(tmp_path, case, needle):
    out = tmp_path / "run"
    out.mkdir()
    config = CFG
    if case == "finished":
        (out / "config.yaml").write_text(yaml.safe_dump(CFG))
        (out / "metrics.json").write_text("{}")
    elif case == "foreign":
        (out / "notes.txt").write_text("mine")
        (out / "photo.jpg").write_bytes(b"\xff\xd8")
    elif case == "other kind":
        (out / "config.yaml").write_text(yaml.safe_dump({**CFG, "kind": "classify"}))
    elif case == "other settings":
        (out / "config.yaml").write_text(yaml.safe_dump(CFG))
        config = {**CFG, "train": {**CFG["train"], "learning_rate": 0.2}}
    elif case == "broken config":
        (out / "config.yaml").write_text("kind: [sft\n")
    else:
        (out / "config.yaml").write_text("- a list\n")
    before = {p: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(LlmkitError) as e:
        prepare_output_dir(out, config, overwrite=False)
    assert needle in str(e.value)
    assert {p: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_starts_a_run_over_and_deletes_only_what_a_run_writes_to_resume(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out, CFG, overwrite=False)
    for d in ("checkpoints/checkpoint-3", "checkpoint", "model"):
        (out / d).mkdir(parents=True)
    (out / "history.jsonl").write_text('{"step": 1}\n')
    (out / "metrics.json").write_text("{}")
    (out / "mine.txt").write_text("kept")
    prepare_output_dir(out, {**CFG, "train": {**CFG["train"], "learning_rate": 0.3}}, overwrite=True)
    assert listing(out) == ["config.yaml", "mine.txt", "model"]  # model/ is replaced when the run saves


def test_generate_refuses_a_finished_run_of_another_kind_and_overwrite_deletes_only_its_own(tmp_path, run_cli):
    """`llmkit generate ... output.dir=<a finished sft run>` used to replace that run's report."""
    run = tmp_path / "sft"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(CFG))
    (run / "metrics.json").write_text(json.dumps({"train_loss": 1.0}))
    (run / "report.md").write_text("# the sft run")
    before = listing(run)
    recipe = ROOT / "recipes" / "data" / "self_instruct_pico.yaml"
    for extra in ([], ["output.overwrite=true"]):
        res = run_cli("generate", recipe, "backend.model=tiny-llama", f"output.dir={run}", *extra)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert ("holds a sft run" if not extra else "is not a self_instruct run") in res.stderr
        assert listing(run) == before and (run / "report.md").read_text() == "# the sft run"
