"""A diverged run stops at the step where the loss or a gradient stops being finite, exits 2 with that
step named, writes no model and no metrics.json, keeps the checkpoints written before it, and leaves
only valid JSON behind (transformers' Trainer would have logged loss 0.0 and trained on)."""

import json
import math

import pytest
from conftest import ROOT
from test_ppo import config as ppo_config
from test_reward import clear_preferences

from llmkit.divergence import Diverged, check_finite
from llmkit.tracking import write_json


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def assert_stopped(res, out):
    assert res.returncode == 2, res.stdout[-1500:] + res.stderr[-3000:]
    assert "training diverged at step" in res.stderr and "train.learning_rate=1e+06" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (out / "metrics.json").exists() and not (out / "model").exists()
    for line in (out / "history.jsonl").read_text().splitlines() if (out / "history.jsonl").exists() else []:
        row = strict_json(line)
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
    return int(res.stderr.split("training diverged at step ")[1].split(":")[0])


def test_sft_stops_at_the_first_nan_gradient_and_keeps_the_checkpoint_before_it(tmp_path, run_cli):
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/sft/full.yaml", "model=tiny-llama", "data.max_train_samples=64",
                  "data.max_test_samples=8", "train.max_steps=8", "train.save_steps=1", "train.logging_steps=1",
                  "eval.num_generate=2", "train.learning_rate=1e6", f"output_dir={out}")
    step = assert_stopped(res, out)
    assert 1 < step < 8
    kept = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert kept == [f"checkpoint-{step - 1}"] and f"checkpoint-{step - 1} (step {step - 1}" in res.stderr
    logged = [strict_json(x)["step"] for x in (out / "history.jsonl").read_text().splitlines()]
    assert logged == list(range(1, step))  # every applied step logged, none after the broken one


def test_reward_model_stops_too(tmp_path, run_cli):
    data = clear_preferences(tmp_path / "prefs", n_train=120, n_test=20)
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/rlhf/reward.yaml", "model=tiny-llama", "method.name=full", f"data={data}",
                  "train.batch_size=12", "train.epochs=2", "train.logging_steps=1", "train.learning_rate=1e6",
                  "calibration.num_samples=8", "eval.before=false", f"output_dir={out}")
    assert_stopped(res, out)


def test_classifier_stops_too(tmp_path, run_cli):
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/classify/finetune_all.yaml", "model=tiny-bert", "data.max_train_samples=64",
                  "data.max_test_samples=32", "train.batch_size=16", "train.epochs=2", "train.learning_rate=1e6",
                  f"output_dir={out}")
    assert_stopped(res, out)


def test_ppo_stops_at_the_update_that_diverges(tmp_path):
    from llmkit.recipes.ppo import run

    out = tmp_path / "run"
    with pytest.raises(Diverged, match=r"training diverged at step 1: \w+ is (nan|inf|-inf)"):
        run(ppo_config(out, train__learning_rate=1e6, train__num_updates=4), out)
    assert not (out / "metrics.json").exists() and not (out / "model").exists()


def test_finite_figures_pass_and_the_first_bad_one_is_named():
    import torch

    check_finite(3, loss=torch.tensor(1.5), gradient_norm=0.0)
    with pytest.raises(Diverged, match="step 7: gradient_norm is inf"):
        check_finite(7, loss=1.0, gradient_norm=torch.tensor(float("inf")))


def test_metrics_json_holds_null_where_a_figure_is_not_finite(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"loss": float("nan"), "curve": [1.0, float("inf")], "n": np.float32("nan"), "ok": 2.5})
    assert strict_json((tmp_path / "m.json").read_text()) == {"loss": None, "curve": [1.0, None], "n": None, "ok": 2.5}
