"""Every recipe YAML parses; every classify recipe smoke-runs on a tiny model and writes its files;
a killed run resumes to the same result; compare writes its table and plot."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from llmkit.recipes import load_config

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
CLASSIFY = [p for p in RECIPES if p.parent.name == "classify"]
SMOKE = ["model=tiny-bert", "data.max_train_samples=64", "data.max_test_samples=32", "train.batch_size=16",
         "train.epochs=1", "eval.batch_size=32"]


def test_there_are_recipes():
    assert {p.stem for p in CLASSIFY} >= {"feature_based", "finetune_last_layers", "finetune_all"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_parses_and_states_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# llmkit ") and str(path.relative_to(ROOT)) in first
    if path.parent.name == "pipelines":  # parsed stage by stage in tests/test_pipeline.py
        from llmkit.pipeline import load_pipeline

        assert load_pipeline(path).stages
        return
    if path.parent.name == "data":  # generation recipes (llmkit generate)
        from llmkit.selfinstruct.pipeline import SelfInstructConfig
        from llmkit.selfinstruct.pipeline import load_config as load_generate

        load_generate(path)
        defaults = SelfInstructConfig()
    else:
        recipe, cfg = load_config(path)
        defaults = recipe.config_cls()
    # A recipe holds only what differs from the defaults.
    raw = yaml.safe_load(path.read_text())
    for section, values in raw.items():
        if isinstance(values, dict) and section != "method":
            for key, value in values.items():
                assert getattr(getattr(defaults, section), key) != value, f"{path}: {section}.{key} restates the default"


def _quickstart_recipes() -> set[str]:
    from llmkit.pipeline import load_pipeline
    from llmkit.quickstart import QUICKSTART

    p = load_pipeline(QUICKSTART, fast=True)
    return {s.recipe.name for s in p.stages if s.kind == "classify"}


# The classify recipes that `llmkit quickstart --fast` runs are smoke-run and reloaded in
# tests/test_quickstart.py; the others here.
@pytest.mark.parametrize("path", [p for p in CLASSIFY if p.name not in _quickstart_recipes()], ids=lambda p: p.stem)
def test_classify_recipe_smoke_run(path, tmp_path, run_cli):
    out = tmp_path / "run"
    res = run_cli("train", path, *SMOKE, f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("config.yaml", "metrics.json", "history.jsonl", "report.md", "confusion.png", "model/classifier.json",
                 "model/head.safetensors"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "trainable_params", "total_params", "train_seconds", "peak_memory_mb"):
        assert key in metrics
    assert 0 <= metrics["accuracy"] <= 1 and metrics["num_test"] == 32
    assert 0 < metrics["trainable_params"] <= metrics["total_params"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["name"] == "tiny-bert" and saved["data"]["max_train_samples"] == 64
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history and all("loss" in h and "step" in h for h in history)
    # the saved model loads in a fresh process and reproduces the reported accuracy
    from llmkit.data.classification import ClassifyDataConfig, prepare
    from llmkit.models.classifier import load_classifier, predict

    model, tok, meta = load_classifier(out / "model")
    data = prepare(ClassifyDataConfig(max_test_samples=32), seed=42)
    preds = predict(model, tok, data.test_texts, meta["max_length"])
    acc = sum(p == y for p, y in zip(preds, data.test_labels)) / len(preds)
    assert acc == pytest.approx(metrics["accuracy"])
    # a second run into the same directory must not clobber it
    res = run_cli("train", path, *SMOKE, f"output_dir={out}")
    assert res.returncode == 2 and "already holds a finished run" in res.stderr


@pytest.mark.parametrize("metrics, config, needle", [
    ('{"accuracy": 0.5, "trainable', None, "metrics.json: does not parse (JSONDecodeError"),
    ('[0.5]', None, "metrics.json: is not a run's metrics"),
    ('{"accuracy": "high", "trainable_params": 1, "train_seconds": 1}', None, "`accuracy` is 'high', not a number"),
    ('{"accuracy": 0.5, "trainable_params": null, "train_seconds": 1}', None, "`trainable_params` is None, not a number"),
    ('{"accuracy": 0.5, "train_seconds": 1}', None, "has no `trainable_params`"),
    ('{"accuracy": 0.5, "trainable_params": 1, "train_seconds": 1}', "method: [lora\n", "config.yaml: does not parse"),
    ('{"accuracy": 0.5, "trainable_params": 1, "train_seconds": 1}', b"\xff\xfe", "config.yaml: does not parse (UnicodeDecodeError"),
])
def test_compare_names_the_broken_file_of_a_run(tmp_path, metrics, config, needle):
    from llmkit.compare import load_run
    from llmkit.errors import LlmkitError

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(metrics)
    if config is not None:
        (run / "config.yaml").write_bytes(config if isinstance(config, bytes) else config.encode())
    with pytest.raises(LlmkitError) as e:
        load_run(run)
    assert needle in str(e.value) and str(run) in str(e.value)


def test_compare_writes_table_and_plot(tmp_path, run_cli):
    outs = []
    for name in ("feature_based", "finetune_last_layers"):
        out = tmp_path / name
        assert run_cli("train", ROOT / f"recipes/classify/{name}.yaml", *SMOKE, f"output_dir={out}").returncode == 0
        outs.append(out)
    res = run_cli("compare", *outs, "--output", tmp_path / "cmp")
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "feature_based" in md and "last_layers" in md and "compare.png" in md
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000
    res = run_cli("compare", tmp_path / "nothing-here")
    assert res.returncode == 2 and "not a finished run" in res.stderr
    # never into a run: neither one of those compared nor any other finished one
    before = sorted(p.name for p in outs[0].iterdir())
    for target, needle in ((outs[0], "is the input"), (outs[0] / "cmp", "lies inside the input")):
        res = run_cli("compare", *outs, "--output", target)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, res.stderr[-1500:]
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    res = run_cli("compare", *outs, "--output", other)
    assert res.returncode == 2 and "holds another run (metrics.json)" in res.stderr
    assert sorted(p.name for p in outs[0].iterdir()) == before and not (other / "compare.md").exists()


def test_classify_reports_the_optimizer_steps_it_took_not_its_history_lines(tmp_path):
    """finetune I with no blocks trains the head alone by gradient descent: 7 steps logged every 5 are 2
    history lines; the closed-form feature-based fit takes no optimizer step."""
    common = ["model=tiny-bert", "data.max_train_samples=32", "data.max_test_samples=16", "train.batch_size=8",
              "model.max_length=32"]
    recipe, cfg = load_config(ROOT / "recipes/classify/finetune_last_layers.yaml",
                              [*common, "method.trainable_layers=0", "train.max_steps=7", "train.logging_steps=5",
                               f"output_dir={tmp_path / 'head'}"])
    m = recipe.run(cfg, tmp_path / "head")
    steps = [json.loads(x)["step"] for x in (tmp_path / "head" / "history.jsonl").read_text().splitlines()]
    assert steps == [5, 7] and m["optimizer_steps"] == 7
    recipe, cfg = load_config(ROOT / "recipes/classify/feature_based.yaml", [*common, f"output_dir={tmp_path / 'lr'}"])
    assert recipe.run(cfg, tmp_path / "lr")["optimizer_steps"] == 0


def test_compare_puts_each_kind_on_its_own_figures(tmp_path, run_cli):
    """sft runs on held-out loss, an evaluation suite on its scores, a classify run on accuracy: one
    table each, in one comparison, and compare.json keeps every figure of every run."""
    sft = ["train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", "data.max_train_samples=16",
           "data.max_test_samples=8", "train.max_steps=2", "eval.num_generate=2", "eval.max_new_tokens=4", "eval.before=false"]
    runs = {"sft-lora": [*sft], "sft-prompt": [*sft, "method=prompt", "method.num_virtual_tokens=4"],
            "classify": ["train", ROOT / "recipes/classify/feature_based.yaml", *SMOKE],
            "eval": ["eval", ROOT / "eval/instructions.yaml", "model.name=tiny-llama", "metrics=[exact_match,rouge]",
                     "data.max_samples=4", "generate.max_new_tokens=4"]}
    for name, argv in runs.items():
        flag = "output.dir" if argv[0] == "eval" else "output_dir"
        res = run_cli(*argv, f"{flag}={tmp_path / name}")
        assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli("compare", *(tmp_path / n for n in runs), "--output", tmp_path / "cmp")
    assert res.returncode == 0, res.stderr[-2000:]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in md.split("\n## ")[1:]}
    assert set(sections) == {"sft (2 runs)", "classify (1 runs)", "eval (1 runs)"}
    assert "eval_loss" in sections["sft (2 runs)"] and "| lora |" in sections["sft (2 runs)"] and "| prompt |" in sections["sft (2 runs)"]
    assert "accuracy" in sections["classify (1 runs)"] and "eval_loss" not in sections["classify (1 runs)"]
    assert "rougeL" in sections["eval (1 runs)"] and "trainable params" not in sections["eval (1 runs)"]
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    by_dir = {Path(r["dir"]).name: r for r in saved}
    for name in runs:
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert {k: by_dir[name][k] for k in ("eval_loss", "accuracy", "exact_match") if k in metrics} == \
            {k: metrics[k] for k in ("eval_loss", "accuracy", "exact_match") if k in metrics}
    assert [by_dir[n]["headline"] for n in runs] == ["eval_loss", "eval_loss", "accuracy", "exact_match"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000
    # a kind compare does not read is named, with the kinds it does
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "metrics.json").write_text("{}")
    (gen / "config.yaml").write_text("kind: self_instruct\n")
    res = run_cli("compare", gen, tmp_path / "classify", "--output", tmp_path / "cmp2")
    assert res.returncode == 2 and "a 'self_instruct' run; compare reads runs of: classify, sft, reward, ppo, eval" in res.stderr
