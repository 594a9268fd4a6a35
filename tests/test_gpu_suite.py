"""benchmarks/gpu_suite.py cannot rot: its dry run (the same code on tiny shapes, on CPU) runs every part and
writes its results file. The real run needs a CUDA device (`python benchmarks/gpu_suite.py run`)."""

import subprocess
import sys

from conftest import ROOT


def test_gpu_suite_dry_run_writes_every_part(tmp_path):
    res = subprocess.run([sys.executable, ROOT / "benchmarks" / "gpu_suite.py", "run", "--dry-run", "--out", tmp_path],
                         capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    text = (tmp_path / "gpu_cpu_dry_run.md").read_text()
    for section in ("## InstructGPT pipeline on the GPU", "## SFT throughput, MFU and memory", "## QLoRA on CUDA"):
        assert section in text
    assert "| sft | sft | done |" in text and "| ppo | ppo | done |" in text and "| eval_ppo | eval | done |" in text
    for method in ("| lora |", "| full |", "| qlora |"):
        assert method in text
