import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA and are skipped without it; `slow` ones (the real SmolLM2) always run
    unless deselected: `make test PYTEST_ARGS='-m "not slow"'` is the quick loop."""
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_configure(config):
    # Tests build their own tiny models; keep llmkit's cache out of the user's home.
    os.environ.setdefault("LLMKIT_CACHE", str(ROOT / ".cache" / "test-llmkit"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_CACHE", str(ROOT / ".cache" / "test-datasets"))


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m llmkit ARGS` in a subprocess; returns CompletedProcess (text)."""

    def _run(*args, timeout=600, cwd=None):
        return subprocess.run([sys.executable, "-m", "llmkit", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd or ROOT)

    return _run


@pytest.fixture
def write_jsonl(tmp_path):
    import json

    def _write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return _write


def toy_rows(n=40, labels=("neg", "pos")):
    words = {"neg": ["awful", "bad", "broken", "poor"], "pos": ["great", "lovely", "good", "superb"]}
    rows = []
    for i in range(n):
        lab = labels[i % len(labels)]
        w = words.get(lab, ["plain"])[i % 4]
        rows.append({"text": f"item {i} was {w} overall", "label": lab})
    return rows


def shared_data(name: str) -> Path | None:
    """Third-party test data lives beside the project in ../shared/data (never copied into it);
    LLMKIT_SHARED_DATA points elsewhere."""
    for base in (os.environ.get("LLMKIT_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if base and (Path(base) / name).is_file():
            return Path(base) / name
    return None


REFERENCE_SEEDS = shared_data("self_instruct_seed_tasks.jsonl")
needs_reference_seeds = pytest.mark.skipif(REFERENCE_SEEDS is None,
                                           reason="../shared/data/self_instruct_seed_tasks.jsonl not found (set LLMKIT_SHARED_DATA)")


def kill_after_checkpoint(proc, checkpoints: Path, settle: float = 0.2, timeout: float = 300) -> None:
    """Wait until `proc` has written an HF Trainer checkpoint under `checkpoints`, then SIGKILL it
    and every process it started (torchrun's workers live in sessions of their own), as a lost
    machine would. Fails the test when the run finished before it could be killed."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(checkpoints.glob("checkpoint-*/trainer_state.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    time.sleep(settle)  # let the checkpoint finish writing
    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    psutil.wait_procs([psutil.Process(p) for p in tree[1:] if psutil.pid_exists(p)], timeout=30)
