"""Pipeline files: the shipped ones parse (every stage's config is built, the GPU one included,
which is never run here), variables and --fast fill in, bad files are named before any stage runs,
and a failing stage stops the pipeline with its log while the stages before it are kept."""

import json
import textwrap

import pytest
from conftest import ROOT

from llmkit.cli import main
from llmkit.errors import ConfigError, LlmkitError
from llmkit.pipeline import load_pipeline, run_pipeline

PIPELINES = ROOT / "recipes" / "pipelines"
INSTRUCTGPT_KINDS = ["self_instruct", "sft", "reward", "ppo", "eval", "eval", "eval"] + ["classify"] * 6 + ["compare"]
# the real-model pipelines also evaluate the base model 3-shot (in-context learning)
WITH_FEWSHOT = INSTRUCTGPT_KINDS[:4] + ["eval"] + INSTRUCTGPT_KINDS[4:]


@pytest.mark.parametrize("fast", [False, True])
def test_quickstart_pipeline_parses(fast, tmp_path):
    p = load_pipeline(PIPELINES / "instructgpt_tiny.yaml", output=tmp_path / "qs", fast=fast)
    assert [s.kind for s in p.stages] == INSTRUCTGPT_KINDS
    sft, ppo, eval_ppo = p.stage("sft"), p.stage("ppo"), p.stage("eval_ppo")
    model = "tiny-llama" if fast else "pico-llama"
    assert f"model={model}" in sft.overrides
    assert f"data.extra_train=[{tmp_path / 'qs' / 'self_instruct'}/finetune.jsonl]" in sft.overrides
    assert f"model.name={tmp_path / 'qs' / 'sft'}/model" in ppo.overrides
    assert f"model.name={tmp_path / 'qs' / 'ppo'}/model" in eval_ppo.overrides
    assert ("train.num_updates=2" in ppo.overrides) is fast
    assert p.stage("compare").runs == [str(tmp_path / "qs" / s.name) for s in p.stages if s.kind == "classify"]
    assert all(s.launch is None for s in p.stages)


@pytest.mark.parametrize("fast", [False, True])
def test_smollm2_pipeline_parses(fast, tmp_path):
    from llmkit.quickstart import QUICKSTART

    p = load_pipeline(QUICKSTART, output=tmp_path / "qs", fast=fast)
    assert QUICKSTART.name == "instructgpt_smollm2.yaml" and [s.kind for s in p.stages] == WITH_FEWSHOT
    model = "tiny-llama" if fast else "smollm2"
    assert f"model={model}" in p.stage("sft").overrides and f"backend.model={model}" in p.stage("self_instruct").overrides
    assert f"model.name={tmp_path / 'qs' / 'sft'}/model" in p.stage("reward").overrides  # InstructGPT: the RM starts from SFT
    assert "fewshot.k=3" in p.stage("eval_fewshot").overrides and f"model.name={model}" in p.stage("eval_fewshot").overrides


def test_gpu_pipeline_parses_with_its_launchers(tmp_path):
    p = load_pipeline(PIPELINES / "instructgpt_gpu.yaml", output=tmp_path / "gpu", var_overrides=["gpus=4"])
    assert [s.kind for s in p.stages] == WITH_FEWSHOT
    assert p.vars["model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    sft, reward, ppo = p.stage("sft"), p.stage("reward"), p.stage("ppo")
    assert sft.launch.name == "zero2.yaml" and reward.launch.name == "zero2.yaml" and ppo.launch.name == "multi_gpu.yaml"
    assert sft.launch_args == ["--num_processes", "4"]
    argv = sft.argv()
    assert argv[1:6] == ["-m", "accelerate.commands.launch", "--config_file", str(sft.launch), "--num_processes"]
    assert argv[argv.index("-m", 2):][:3] == ["-m", "llmkit", "train"]
    assert p.stage("eval_base").launch is None and p.stage("classify_lora").launch is None
    assert "model=Qwen/Qwen2.5-0.5B-Instruct" in sft.overrides and "train.mixed_precision=bf16" in sft.overrides


def test_variables_from_the_command_line(tmp_path):
    p = load_pipeline(PIPELINES / "instructgpt_tiny.yaml", output=tmp_path, var_overrides=["model=tiny-gpt2"])
    assert "model=tiny-gpt2" in p.stage("sft").overrides and "backend.model=tiny-gpt2" in p.stage("self_instruct").overrides
    with pytest.raises(ConfigError, match=r"no variable `modle` \(did you mean `model`\?\)"):
        load_pipeline(PIPELINES / "instructgpt_tiny.yaml", var_overrides=["modle=x"])


def _write(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("body, message", [
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s, set: [train.lerning_rate=1]}\n",
     r"stage `a`: unknown key `train.lerning_rate` \(did you mean `train.learning_rate`\?\)"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s, set: [\"model={sft}/model\"]}\n",
     r"stage `a`: `\{sft\}` is neither a variable \(none\) nor an earlier stage \(none yet\)"),
    ("kind: pipeline\nstages:\n  - {name: a, run: compare, runs: [b]}\n", r"stage `a`: `runs` names 'b', not an earlier stage"),
    ("kind: pipeline\nstages:\n  - {name: a, run: fit, recipe: %s}\n", r"stage `a`: `run` must be one of train, generate, eval, compare"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: nowhere.yaml}\n", r"stage `a`: recipe file not found: .*nowhere.yaml"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s, sets: []}\n", r"stage 1: unknown key\(s\) sets"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s}\n  - {name: a, run: train, recipe: %s}\n",
     r"stage `a`: the name is already used by a stage"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s, launch: nowhere.yaml}\n", r"accelerate config not found"),
    ("kind: train\nstages: []\n", r"needs `kind: pipeline`"),
    ("kind: pipeline\nstages: []\n", r"`stages` must be a non-empty list"),
    ("kind: pipeline\nstages:\n  - {name: a, run: train, recipe: %s}\n"
     "  - {name: b, run: train, recipe: %s, set: [data.path=/nowhere/prefs.jsonl]}\n",
     r"stage `b`: data.path=/nowhere/prefs.jsonl: not found \(every stage's files are checked before the first"),
])
def test_bad_pipeline_files_are_named_before_anything_runs(body, message, tmp_path):
    recipe = ROOT / "recipes" / "sft" / "lora.yaml"
    path = _write(tmp_path, body.replace("%s", str(recipe)))
    with pytest.raises(ConfigError, match=message):
        load_pipeline(path, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_an_earlier_stage_makes_is_not_required_to_exist(tmp_path):
    path = _write(tmp_path, f"""\
        kind: pipeline
        stages:
          - {{name: a, run: train, recipe: {ROOT / 'recipes/sft/lora.yaml'}}}
          - {{name: b, run: train, recipe: {ROOT / 'recipes/sft/lora.yaml'}, set: ["data.path={{a}}/generations.jsonl"]}}
        """)
    assert load_pipeline(path, output=tmp_path / "out").stage("b").overrides == [f"data.path={tmp_path / 'out' / 'a'}/generations.jsonl"]


def test_cli_prints_every_stage_command_and_points_train_to_pipeline(run_cli):
    res = run_cli("pipeline", PIPELINES / "instructgpt_gpu.yaml", "--print-config", "gpus=2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert ("sft: accelerate launch --config_file accelerate_configs/zero2.yaml --num_processes 2 -m llmkit train "
            "recipes/sft/lora.yaml model=Qwen/Qwen2.5-0.5B-Instruct") in res.stdout
    assert "eval_ppo: llmkit eval eval/instructions.yaml" in res.stdout
    res = run_cli("train", PIPELINES / "instructgpt_tiny.yaml")
    assert res.returncode == 2 and "run it with `llmkit pipeline" in res.stderr


def test_a_failing_stage_stops_with_its_log_and_the_rerun_keeps_what_finished(tmp_path, write_jsonl, capsys):
    rows = [{"prediction": "the cat sat", "reference": "the cat sat"}, {"prediction": "a dog", "reference": "the dog"}]
    preds = write_jsonl("preds.jsonl", rows)
    later = tmp_path / "later.jsonl"  # cut mid-row (a file still being written): the second stage fails
    later.write_text('{"prediction": "the ca')
    path = _write(tmp_path, f"""\
        kind: pipeline
        name: two evaluations
        vars: {{later: {later}}}
        stages:
          - {{name: first, run: eval, recipe: {ROOT / 'eval/score_generations.yaml'},
              set: ["predictions.path={preds}", "predictions.column=prediction", "metrics=[bleu,exact_match]"]}}
          - {{name: second, run: eval, recipe: {ROOT / 'eval/score_generations.yaml'},
              set: ["predictions.path={{later}}", "predictions.column=prediction", "metrics=[exact_match]"]}}
        """)
    p = load_pipeline(path, output=tmp_path / "out")
    with pytest.raises(LlmkitError, match=r"stage `second` failed \(exit code 2\).*Log: .*second.log"):
        run_pipeline(p, main)
    assert (tmp_path / "out" / "first" / "metrics.json").is_file()
    record = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert record["stages"]["first"]["status"] == "done" and record["stages"]["second"]["status"] == "failed"
    assert "later.jsonl" in (tmp_path / "out" / "second.log").read_text() and not (tmp_path / "out" / "second").exists()
    first_metrics = (tmp_path / "out" / "first" / "metrics.json").read_text()

    later.write_text(preds.read_text())
    capsys.readouterr()
    record = run_pipeline(load_pipeline(path, output=tmp_path / "out"), main)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/2] first: done before, kept") and lines[1].startswith("[2/2] second: running ... done (")
    assert (tmp_path / "out" / "first" / "metrics.json").read_text() == first_metrics
    assert json.loads((tmp_path / "out" / "second" / "metrics.json").read_text())["exact_match"] == 0.5
    assert record["stages"]["second"]["status"] == "done"


def test_a_pipeline_never_writes_into_a_directory_it_did_not_make(tmp_path):
    out = tmp_path / "a-run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    p = load_pipeline(PIPELINES / "instructgpt_tiny.yaml", output=out, fast=True)
    with pytest.raises(LlmkitError, match=r"holds files that are not a pipeline's \(metrics.json\)"):
        run_pipeline(p, main)
    assert sorted(f.name for f in out.iterdir()) == ["metrics.json"]
