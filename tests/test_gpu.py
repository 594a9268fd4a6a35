"""On a CUDA device (skipped elsewhere): the sft recipe trains a tiny Llama in bf16 autocast on the GPU,
its loss falls and the held-out loss with it, and the peak memory is the allocator's. The full GPU suite
(every profile, the real model) is benchmarks/gpu_suite.py."""

import json

import pytest
from conftest import ROOT


@pytest.mark.gpu
def test_sft_trains_in_bf16_on_cuda(tmp_path, run_cli):
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", "data.max_train_samples=64",
                  "data.max_test_samples=8", "train.max_steps=20", "train.batch_size=8", "train.learning_rate=3e-3",
                  "train.mixed_precision=bf16", "train.logging_steps=1", "eval.num_generate=2", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert metrics["peak_memory_kind"] == "cuda_max_allocated"
    assert sum(h["loss"] for h in history[-5:]) < sum(h["loss"] for h in history[:5])
    assert metrics["eval_loss"] < metrics["base_eval_loss"]
