"""`llmkit quickstart`: the demo, end to end, on the embedded defaults, with no network.

Today it runs Raschka's three conventional methods on the bundled review data with the MiniLM
encoder (feature-based, finetune I, finetune II) and compares them. LoRA, adapters and prefix
tuning run through the same recipe (recipes/classify/) and `llmkit compare` takes their runs too;
they join the quickstart once its time budget is re-measured with them (issue 8). Each stage is a normal
`llmkit train` run in its own process (so each one's peak memory is its own) and is skipped when a
previous quickstart already finished it: a killed quickstart started again continues where it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from llmkit.errors import LlmkitError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
CLASSIFY_STAGES = [
    ("feature-based", "classify/feature_based.yaml"),
    ("finetune I (last layers)", "classify/finetune_last_layers.yaml"),
    ("finetune II (all layers)", "classify/finetune_all.yaml"),
]
FAST = ["model=tiny-bert", "data.max_train_samples=256", "data.max_test_samples=128", "train.epochs=1",
        "train.batch_size=16"]


def _train(recipe: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "llmkit", "train", str(recipe), f"output_dir={out}", *extra]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (out.parent / f"{out.name}.log").write_text(res.stdout)
    if res.returncode != 0:
        tail = "\n".join(res.stdout.splitlines()[-15:])
        raise LlmkitError(f"stage {out.name} failed (log: {out.parent / (out.name + '.log')}):\n{tail}")
    return json.loads((out / "metrics.json").read_text())


def quickstart(output: str | Path = "runs/quickstart", fast: bool = False) -> Path:
    from llmkit.compare import compare

    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    extra = FAST if fast else []
    runs = []
    total = len(CLASSIFY_STAGES) + 1
    for i, (label, rel) in enumerate(CLASSIFY_STAGES, 1):
        out = root / Path(rel).stem
        runs.append(out)
        if (out / "metrics.json").is_file():
            print(f"[{i}/{total}] {label}: already done, kept ({out})", flush=True)
            continue
        print(f"[{i}/{total}] {label}: training ...", flush=True)
        start = time.perf_counter()
        m = _train(RECIPES_DIR / rel, out, extra)
        print(f"[{i}/{total}] {label}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
              f"{m['trainable_params']:,} trainable params, {m['train_seconds']:.0f}s training, "
              f"{m['peak_memory_mb']:.0f} MB peak ({time.perf_counter() - start:.0f}s)", flush=True)
    report = compare([str(r) for r in runs], root / "compare")
    print(f"[{total}/{total}] compare: wrote {report}", flush=True)
    print("\n" + "\n".join(line for line in report.read_text().splitlines() if line.startswith("|")))
    print(f"\nreport: {report}")
    return report
