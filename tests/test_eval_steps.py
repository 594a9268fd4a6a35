"""Evaluation while training (train.eval_steps), early stopping and keep-best for sft, reward and classify,
and a named checkpoint to resume from for the kinds on the HF Trainer (sft, reward)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from test_kill_resume import _same

SFT = ["train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", "eval.num_generate=4", "eval.max_new_tokens=4",
       "train.logging_steps=1"]
# full finetuning of the tiny model on 8 rows at a high rate: held-out loss falls, then rises as it memorises
OVERFITS = [*SFT, "method=full", "data.max_train_samples=8", "train.batch_size=8", "data.max_test_samples=16",
            "train.max_steps=40", "train.learning_rate=0.01", "train.warmup_ratio=0", "train.eval_steps=2"]


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_early_stopping_keeps_the_best_step(run_cli, tmp_path):
    out = tmp_path / "run"
    res = run_cli(*OVERFITS, "train.early_stopping_patience=2", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    evals = [r for r in lines(out / "history.jsonl") if "eval_loss" in r]
    assert [r["step"] for r in evals] == list(range(2, m["optimizer_steps"] + 1, 2))
    assert all("eval_exact_match" in r for r in evals)  # the small generation metric at each evaluation
    best = min(evals, key=lambda r: r["eval_loss"])
    assert m["stopped_early"] is True and m["optimizer_steps"] < 40
    assert m["best_step"] == best["step"] and m["optimizer_steps"] == best["step"] + 2 * 2  # patience 2 x eval_steps 2
    assert m["best_eval_loss"] == pytest.approx(best["eval_loss"])
    # what was saved and measured after training is the best step's model, not the last step's
    assert m["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-5)
    assert m["eval_loss"] < evals[-1]["eval_loss"] - 0.1
    report = (out / "report.md").read_text()
    assert f"The weights saved are step {best['step']}'s" in report and "stopped early" in report


def test_a_run_resumes_from_a_named_checkpoint_of_another_run(run_cli, tmp_path):
    """Run A is killed after its first checkpoint (step 2); run B, in a new directory, names that
    checkpoint and ends exactly where an uninterrupted run C ends."""
    args = [*SFT, "method.dropout=0", "data.max_train_samples=32", "data.max_test_samples=8", "train.batch_size=8",
            "train.max_steps=6", "train.save_steps=2"]
    env = {**os.environ, "LLMKIT_KILL_AT": "train@1"}
    a = subprocess.run([sys.executable, "-m", "llmkit", *map(str, args), f"output_dir={tmp_path / 'a'}"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert a.returncode == -9, a.stderr[-2000:]
    ckpt = tmp_path / "a" / "checkpoints" / "checkpoint-2"
    assert (ckpt / "trainer_state.json").is_file()
    res = run_cli(*args, f"train.resume_from_checkpoint={ckpt}", f"output_dir={tmp_path / 'b'}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in res.stdout + res.stderr
    res = run_cli(*args, f"output_dir={tmp_path / 'c'}")
    assert res.returncode == 0, res.stderr[-3000:]
    b, c = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "bc")
    _same(c, b)
    _same([r for r in lines(tmp_path / "c" / "history.jsonl") if r["step"] > 2], lines(tmp_path / "b" / "history.jsonl"))


def test_reward_evaluates_held_out_pairs_and_keeps_the_best(run_cli, tmp_path):
    from test_reward import clear_preferences

    prefs = tmp_path / "prefs"
    clear_preferences(prefs, n_train=24, n_test=8)
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/rlhf/reward.yaml", "model=tiny-llama", f"data={prefs}", "train.batch_size=12",
                  "train.max_steps=8", "train.save_steps=0", "calibration.num_samples=8", "eval.before=false",
                  "train.eval_steps=2", "train.keep_best=true", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    evals = [r for r in lines(out / "history.jsonl") if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4, 6, 8]
    assert all("eval_accuracy" in r and "eval_num_tokens" not in r for r in evals)
    m = json.loads((out / "metrics.json").read_text())
    best = min(evals, key=lambda r: r["eval_loss"])
    assert m["best_step"] == best["step"] and m["stopped_early"] is False
    # llmkit's exact evaluator on the saved (best) model agrees with the Trainer's evaluation at that step
    # (its loss adds the centring term, so the margin is compared: one batch holds all 24 held-out pairs)
    assert m["mean_margin"] == pytest.approx(best["eval_margin"], rel=1e-4)


@pytest.mark.parametrize("overrides, needle", [
    (["train.keep_best=true"], "train.keep_best needs train.eval_steps > 0"),
    (["train.early_stopping_patience=3"], "train.early_stopping_patience needs train.eval_steps > 0"),
    (["train.eval_steps=2", "train.keep_best=true", "train.save_steps=3"], "must be a multiple of train.eval_steps=2"),
    (["train.eval_steps=-1"], "must be >= 0"),
    (["train.resume_from_checkpoint=/nonexistent/checkpoint-4"], "/nonexistent/checkpoint-4 does not exist"),
    (["train.resume_from_checkpoint={tmp}"], "holds no trainer_state.json"),
])
def test_bad_evaluation_settings_stop_before_work(overrides, needle, run_cli, tmp_path):
    res = run_cli(*SFT, *[o.format(tmp=tmp_path) for o in overrides], f"output_dir={tmp_path / 'run'}")
    assert res.returncode == 2 and needle in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not (tmp_path / "run").exists()


CLASSIFY = ["train", ROOT / "recipes/classify/lora.yaml", "model=tiny-bert", "data.max_train_samples=64",
            "data.max_test_samples=32", "train.max_steps=40", "train.batch_size=8", "train.learning_rate=0.05",
            "train.eval_steps=2", "train.logging_steps=1"]


@pytest.mark.parametrize("recipe", ["lora", "finetune_last_layers"])  # the backbone loop and the head-only loop
def test_classify_stops_early_and_keeps_the_best_weights(recipe, run_cli, tmp_path):
    import torch

    from llmkit.data.classification import ClassifyDataConfig, prepare
    from llmkit.models.classifier import Collator, load_classifier

    out = tmp_path / "run"
    args = [str(a).replace("lora.yaml", f"{recipe}.yaml") for a in CLASSIFY]
    if recipe == "finetune_last_layers":
        args.append("method.trainable_layers=0")
    res = run_cli(*args, "train.early_stopping_patience=2", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    evals = [r for r in lines(out / "history.jsonl") if "eval_loss" in r]
    assert [r["step"] for r in evals] == list(range(2, m["optimizer_steps"] + 1, 2)) and "eval_accuracy" in evals[0]
    best = min(evals, key=lambda r: r["eval_loss"])
    assert m["stopped_early"] is True and m["best_step"] == best["step"]
    assert m["optimizer_steps"] == best["step"] + 2 * 2 < 40  # patience 2 x eval_steps 2
    # the saved model is the best step's: its loss on the test rows is that evaluation's
    model, tok, _ = load_classifier(out / "model")
    data = prepare(ClassifyDataConfig(max_train_samples=64, max_test_samples=32))
    batch = Collator(tok, 128)(list(zip(data.test_texts, data.test_labels)))
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"]).item()
    assert loss == pytest.approx(best["eval_loss"], rel=1e-4) and loss < evals[-1]["eval_loss"]
    assert m["accuracy"] == pytest.approx(best["eval_accuracy"])
    assert "weights kept (train.keep_best)" in (out / "report.md").read_text()


def test_classify_refuses_evaluation_between_steps_of_a_closed_form_fit(run_cli, tmp_path):
    res = run_cli("train", ROOT / "recipes/classify/feature_based.yaml", "model=tiny-bert", "train.eval_steps=2",
                  f"output_dir={tmp_path / 'run'}")
    assert res.returncode == 2 and "fits its head in closed form" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "run").exists()
