"""Several processes on CPU, the way users launch them: `accelerate launch --config_file
accelerate_configs/X.yaml -m llmkit train RECIPE.yaml`, 2 processes, gloo, tiny models.

For SFT (LoRA and full) and reward modelling under DDP (cpu.yaml), DeepSpeed ZeRO-2 and ZeRO-3:
the world size is 2, the two ranks split each global batch (the tokens seen add up to one
process's, not twice), and after the same optimizer steps on the same global batch the losses and
the saved weights equal a one-process run's; the saved model loads in one process. A ZeRO-3 run
killed after a checkpoint resumes from it. PPO completes updates with 2 processes, and its
cross-rank whitening and gradient averaging equal the one-process computation on the whole batch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, kill_after_checkpoint

pytest.importorskip("deepspeed")

PROFILES = ["cpu", "zero2", "zero3"]
SFT = ["model=tiny-llama", "data.max_train_samples=32", "data.max_test_samples=8", "train.batch_size=8",
       "train.max_steps=4", "train.save_steps=2", "train.logging_steps=1", "eval.num_generate=0", "eval.before=false"]
RUNS = {
    "sft-lora": ("recipes/sft/lora.yaml", SFT + ["method.dropout=0"]),
    "sft-full": ("recipes/sft/full.yaml", SFT),
    "sft-lora-long": ("recipes/sft/lora.yaml", SFT + ["method.dropout=0", "train.max_steps=12", "data.max_train_samples=96"]),
    "reward": ("recipes/rlhf/reward.yaml", ["model=tiny-llama", "data.max_train_samples=24", "data.max_test_samples=8",
                                           "train.batch_size=12", "train.max_steps=3", "train.save_steps=0",
                                           "train.logging_steps=1", "calibration.num_samples=8", "eval.before=false",
                                           "eval.num_examples=1"]),
}


def test_the_readme_command_on_a_cpu_machine_says_what_to_pass_instead_of_crashing_8_ranks(tmp_path):
    """`accelerate launch --config_file accelerate_configs/zero2.yaml -m llmkit train ...` as the README writes it:
    the profile's 8 processes on a machine without a GPU stop with one message (every rank used to fail on
    DeepSpeed's "ds bf16.enabled=True vs hf bf16=False")."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                          str(ROOT / "accelerate_configs/zero2.yaml"), "-m", "llmkit", "train", str(ROOT / "recipes/sft/lora.yaml"),
                          *SFT, f"output_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if (os.cpu_count() or 1) >= 8:
        pytest.skip("this machine has 8 cores: the profile's 8 processes are allowed on it")
    assert res.returncode != 0
    assert res.stderr.count("llmkit: error: 8 processes were started on this machine, which has no GPU") == 1, res.stderr[-3000:]
    # (torchrun prints its own ChildFailedError traceback for the launcher; none comes from llmkit)
    assert "pass --num_processes 2" in res.stderr and str(ROOT / "llmkit") not in res.stderr
    assert not (tmp_path / "run").exists()


def launch(profile: str | None, recipe: str, args: list[str], out: Path, **popen):
    """`llmkit train` in one process (profile None) or under `accelerate launch` with 2 processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "llmkit", "train", str(ROOT / recipe), *args, f"output_dir={out}"]
    if profile:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / f"accelerate_configs/{profile}.yaml"),
               "--num_processes", "2", "-m", "llmkit", "train", str(ROOT / recipe), *args, f"output_dir={out}"]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, **popen)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


def losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "history.jsonl").read_text().splitlines()]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    assert files, f"no weights in {model_dir}"
    return {k: v for f in files for k, v in load_file(f).items()}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One-process reference runs, made on first use."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(f"{name}-1proc") / "run"
            launch(None, *RUNS[name], out)
            done[name] = out
        return done[name]

    return get


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", ["sft-lora", "sft-full", "reward"])
def test_two_processes_match_one(name, profile, single, tmp_path):
    ref = single(name)
    out = tmp_path / "run"
    launch(profile, *RUNS[name], out)
    m, m1 = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    assert m["world_size"] == 2 and m1["world_size"] == 1
    assert m["distributed_backend"] == "gloo"
    assert m["distributed_type"] == ("MULTI_CPU" if profile == "cpu" else "DEEPSPEED")
    if profile != "cpu":
        assert m["zero_stage"] == int(profile[-1])
    # the ranks split the global batch: the tokens seen (summed over ranks) are one process's, not 2x
    assert m["train_tokens"] == m1["train_tokens"]
    assert m["optimizer_steps"] == m1["optimizer_steps"]
    assert losses(out) == pytest.approx(losses(ref), rel=1e-4)
    w, w1 = weights(out / "model"), weights(ref / "model")
    assert w.keys() == w1.keys()
    for k in w1:
        torch.testing.assert_close(w[k].float(), w1[k].float(), rtol=1e-3, atol=1e-5, msg=k)
    if name.startswith("sft"):
        assert m["eval_loss"] == pytest.approx(m1["eval_loss"], rel=1e-4)
    else:
        assert m["pairwise_accuracy"] == pytest.approx(m1["pairwise_accuracy"], abs=1e-9)


def test_zero3_model_loads_in_one_process_and_resumes_after_kill(single, tmp_path):
    """A ZeRO-3 run killed after its first checkpoint continues from it and ends where an
    uninterrupted one-process run does; what it saves is a normal PEFT directory."""
    from llmkit.models.trained import load_causal

    ref = single("sft-lora-long")
    out = tmp_path / "killed"
    proc = launch("zero3", *RUNS["sft-lora-long"], out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after_checkpoint(proc, out / "checkpoints")
    assert not (out / "metrics.json").exists()
    ckpt = next((out / "checkpoints").glob("checkpoint-*"))
    assert any(ckpt.glob("global_step*")), "not a DeepSpeed checkpoint"
    res = launch("zero3", *RUNS["sft-lora-long"], out)
    assert "resum" in (res.stdout + res.stderr).lower()
    assert len(losses(out)) == 12
    assert losses(out) == pytest.approx(losses(ref), rel=1e-4)
    assert (out / "model" / "adapter_config.json").is_file()
    model, tok = load_causal(str(out / "model"))
    ids = tok("hello", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(ids).logits).all()


def test_ppo_with_two_processes(tmp_path):
    out = tmp_path / "ppo"
    args = ["model=tiny-llama", "method=lora", "reward.model=null", "reward.function=llmkit.rlhf.rewards:short_answer",
            "ppo.rollout_batch_size=8", "ppo.mini_batch_size=4", "ppo.ppo_epochs=1", "ppo.max_new_tokens=4",
            "train.num_updates=3", "train.save_every=0", "eval.num_prompts=4", "eval.max_new_tokens=4"]
    launch("cpu", "recipes/rlhf/ppo.yaml", args, out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["updates"] == 3
    h = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in h] == [1, 2, 3]
    assert all(r["optimizer_steps"] == 2 and r["first_ratio"] == pytest.approx(1.0, abs=1e-6) for r in h)
    assert (out / "model" / "model.safetensors").is_file()


def test_ppo_refuses_deepspeed_with_a_clear_error(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_DEEPSPEED": "true"}
    res = subprocess.run([sys.executable, "-m", "llmkit", "train", str(ROOT / "recipes/rlhf/ppo.yaml"), "model=tiny-llama",
                          "reward.model=null", "reward.function=llmkit.rlhf.rewards:short_answer", f"output_dir={tmp_path}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "DeepSpeed" in res.stderr and "Traceback" not in res.stderr


def _ranks_worker(rank: int, world: int, port: int, q):
    import torch.distributed as dist

    from llmkit.recipes.ppo import Ranks

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    x, mask = torch.randn(6, 5, generator=g), (torch.rand(6, 5, generator=g) > 0.3).float()
    grads = torch.randn(6, 3, generator=g)
    mine = slice(3 * rank, 3 * rank + 3)
    w = Ranks(world, rank).whiten(x[mine], mask[mine])
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = grads[mine].sum(0).clone()
    Ranks(world, rank).average_gradients([p])
    q.put((rank, w, p.grad))
    dist.destroy_process_group()


def test_ppo_whitening_and_gradients_across_ranks_equal_one_process():
    import socket

    import torch.multiprocessing as mp

    from llmkit.rlhf import core

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ranks_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict((r, (w, g)) for r, w, g in (q.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(60)
    g = torch.Generator().manual_seed(0)
    x, mask = torch.randn(6, 5, generator=g), (torch.rand(6, 5, generator=g) > 0.3).float()
    grads = torch.randn(6, 3, generator=g)
    whole = core.masked_whiten(x, mask)
    torch.testing.assert_close(torch.cat([got[0][0], got[1][0]]), whole, rtol=1e-5, atol=1e-6)
    for r in (0, 1):
        torch.testing.assert_close(got[r][1], (grads[:3].sum(0) + grads[3:].sum(0)) / 2)


@pytest.mark.parametrize("requested, launcher, chosen", [
    ("auto", "bf16", "no"),  # a GPU profile on a CPU machine: no autocast (this machine has no GPU)
    ("auto", None, "no"),
    ("no", "bf16", "no"),  # the recipe wins, and Accelerate (DeepSpeed's config) is told
    ("bf16", "no", "bf16"),
])
def test_mixed_precision_is_one_choice_for_accelerate_and_the_trainer(monkeypatch, requested, launcher, chosen):
    from llmkit import distributed

    if torch.cuda.is_available():
        pytest.skip("the CPU rule")
    if launcher is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launcher)
    assert distributed.mixed_precision(requested) == chosen
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == chosen
