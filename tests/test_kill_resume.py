"""Kill a run at each point where a lost machine can stop it, start it again, and check it ends where
the uninterrupted run ends: the same metrics.json (or stats.json) with timing keys aside, the same
history.jsonl. One matrix for every kind (llmkit/faults.py names the points):

    start       the directory and config.yaml exist, nothing has run
    checkpoint  the 2nd checkpoint is half written (its weights, not the state that completes it):
                the run resumes from the 1st
    train       the 1st checkpoint (for generate and eval: a record or a batch) is complete
    model       model/ is saved, report and metrics.json are not: the run resumes from its last
                checkpoint, which for sft and reward is the final step (counters restored, no step run)
    report      report.md is written, report.html and metrics.json are not

The runs fork from one process that imported torch and the recipes once (tests/kill_runner.py).
"""

import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT

BUNDLED = ROOT / "llmkit" / "data" / "bundled"

KINDS = {
    "classify": (["train", ROOT / "recipes/classify/finetune_all.yaml", "model=tiny-bert", "data.max_train_samples=48",
                  "data.max_test_samples=16", "train.batch_size=8", "train.epochs=2", "train.save_steps=3",
                  "train.logging_steps=2", "train.eval_steps=3", "train.keep_best=true"],
                 ("start", "checkpoint@2", "train", "model", "report")),
    "sft": (["train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", "method.dropout=0", "data.max_train_samples=48",
             "data.max_test_samples=8", "train.batch_size=8", "train.epochs=2", "train.save_steps=3",
             "train.logging_steps=1", "eval.num_generate=2", "eval.max_new_tokens=4"],
            ("start", "checkpoint@2", "train", "model", "report")),
    "reward": (["train", ROOT / "recipes/rlhf/reward.yaml", "model=tiny-llama", "data={prefs}", "train.batch_size=12",
                "train.max_steps=6", "train.save_steps=2", "train.logging_steps=1", "calibration.num_samples=8",
                "eval.before=false"],
               ("start", "checkpoint@2", "train", "model", "report")),
    "ppo": (["train", ROOT / "recipes/rlhf/ppo.yaml", "model.name=tiny-llama", "method=full", "reward.model=null",
             "reward.function=llmkit.rlhf.rewards:short_answer", "reward.missing_eos_penalty=null",
             "ppo.rollout_batch_size=8", "ppo.mini_batch_size=4", "ppo.ppo_epochs=1", "ppo.max_new_tokens=6",
             "train.num_updates=6", "train.save_every=2", "train.sample_every=1", "eval.num_prompts=4",
             "eval.max_new_tokens=6"],
            ("start", "checkpoint@2", "train", "model", "report")),
    "generate": (["generate", ROOT / "recipes/data/self_instruct_pico.yaml", "backend.model=tiny-llama",
                  "bootstrap.prompts_per_round=2", "bootstrap.max_tokens=24", "bootstrap.patience=5",
                  "bootstrap.drop_truncated=false", "backend.batch_size=4", "num_instructions=8",
                  "stages=[bootstrap,export]"],
                 ("start", "train@4", "report")),
    "eval": (["eval", ROOT / "eval/instructions.yaml", "model.name=tiny-llama", "metrics=[exact_match,rouge]",
              "data.max_samples=8", "generate.max_new_tokens=6", "generate.batch_size=2"],
             ("start", "train@2", "report")),
}
DONE = {"generate": "stats.json"}
TIMING = ("second", "peak_memory")  # keys holding these measure the machine, not the run


def _out_flag(kind: str) -> str:
    return "output.dir" if kind in ("generate", "eval") else "output_dir"


def _same(a, b, where=""):
    """Equal, floats to 1e-6 relative; keys that measure time or memory skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a.keys() | b.keys() if not any(t in k for t in TIMING)}
        for k in sorted(keys):
            _same(a.get(k), b.get(k), f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items against {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-9), f"{where}: {a} against {b}"
    else:
        assert a == b, f"{where}: {a!r} against {b!r}"


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_run_killed_anywhere_ends_like_the_uninterrupted_one(kind, tmp_path):
    from llmkit.models.loading import resolve_model

    for name in ("tiny-bert", "tiny-llama"):
        resolve_model(name)  # built here, not in the first run of the matrix
    argv, points = KINDS[kind]
    prefs = tmp_path / "prefs"
    if kind == "reward":
        from test_reward import clear_preferences

        clear_preferences(prefs, n_train=12, n_test=8)  # 12 prompts x 3 pairs: max_steps=6 is 2 epochs, resumed mid-epoch
    argv = [str(a).format(prefs=prefs) for a in argv]

    def job(name, env=None):
        return {"argv": [*argv, f"{_out_flag(kind)}={tmp_path / name}"], "env": env or {},
                "log": str(tmp_path / f"{name}.{len(jobs)}.log")}

    jobs = []
    jobs.append(job("ref"))
    for p in points:
        name = p.replace("@", "-")
        jobs.append(job(name, {"LLMKIT_KILL_AT": p}))
        jobs.append(job(name))
    spec, results = tmp_path / "jobs.json", tmp_path / "results.json"
    spec.write_text(json.dumps(jobs))
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_runner.py"), str(spec), str(results)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    codes = json.loads(results.read_text())

    def log(i):
        return open(jobs[i]["log"]).read()[-3000:]

    done = DONE.get(kind, "metrics.json")
    assert codes[0] == 0, log(0)
    ref = tmp_path / "ref"
    for i, p in enumerate(points):
        killed, again, out = 1 + 2 * i, 2 + 2 * i, tmp_path / p.replace("@", "-")
        assert codes[killed] == -9, f"{p}: the run was not killed there (exit {codes[killed]})\n{log(killed)}"
        assert codes[again] == 0, f"{p}: the run started again failed\n{log(again)}"
        _same(json.loads((ref / done).read_text()), json.loads((out / done).read_text()), f"{kind}@{p}")
        _same(_lines(ref / "history.jsonl"), _lines(out / "history.jsonl"), f"{kind}@{p} history")
        for name in ("samples.jsonl", "instructions.jsonl", "predictions.jsonl"):
            _same(_lines(ref / name), _lines(out / name), f"{kind}@{p} {name}")
        assert (out / "report.html").is_file() and not any(out.glob("checkpoint*")), p
        _same_weights(ref / "model", out / "model", f"{kind}@{p}")


def _same_weights(a, b, where):
    from safetensors.torch import load_file

    files = sorted(f.relative_to(a) for f in a.rglob("*.safetensors")) if a.is_dir() else []
    assert files == (sorted(f.relative_to(b) for f in b.rglob("*.safetensors")) if b.is_dir() else []), where
    for f in files:
        wa, wb = load_file(str(a / f)), load_file(str(b / f))
        assert wa.keys() == wb.keys(), f"{where}: {f}"
        for k in wa:
            assert (wa[k] - wb[k]).abs().max() <= 1e-6 * (1 + wa[k].abs().max()), f"{where}: {f} {k}"


def test_a_comparison_killed_while_writing_ends_like_the_uninterrupted_one(tmp_path):
    classify = ["train", str(ROOT / "recipes/classify/feature_based.yaml"), "model=tiny-bert", "data.max_train_samples=32",
                "data.max_test_samples=16"]
    runs = [str(tmp_path / "a"), str(tmp_path / "b")]
    jobs = [{"argv": [*classify, f"output_dir={runs[0]}"]}, {"argv": [*classify, "train.seed=1", f"output_dir={runs[1]}"]},
            {"argv": ["compare", *runs, "--output", str(tmp_path / "ref")]},
            {"argv": ["compare", *runs, "--output", str(tmp_path / "cmp")], "env": {"LLMKIT_KILL_AT": "report"}},
            {"argv": ["compare", *runs, "--output", str(tmp_path / "cmp")]}]
    for i, job in enumerate(jobs):
        job["log"] = str(tmp_path / f"{i}.log")
    spec, results = tmp_path / "jobs.json", tmp_path / "results.json"
    spec.write_text(json.dumps(jobs))
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_runner.py"), str(spec), str(results)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(results.read_text()) == [0, 0, 0, -9, 0], [open(j["log"]).read()[-1500:] for j in jobs]
    ref, out = (json.loads((tmp_path / d / "compare.json").read_text()) for d in ("ref", "cmp"))
    for r in ref + out:
        r.pop("dir")
    _same(ref, out, "compare")
    assert (tmp_path / "cmp" / "compare.md").read_text() == (tmp_path / "ref" / "compare.md").read_text().replace(
        str(tmp_path / "ref"), str(tmp_path / "cmp"))
