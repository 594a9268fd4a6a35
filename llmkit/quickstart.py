"""`llmkit quickstart` and `llmkit pipeline`: a pipeline file run end to end, then one report.

`llmkit quickstart` runs recipes/pipelines/instructgpt_smollm2.yaml into runs/quickstart: InstructGPT
on the embedded SmolLM2-135M-Instruct (Self-Instruct -> SFT -> reward model -> PPO -> the base model
zero-shot and 3-shot vs SFT vs PPO on the same held-out prompts) and the classification methods
compared, on a CPU with no network. `--fast` runs
the same stages on tiny random models with a few steps each (a smoke run for tests and for
checking a machine, not a measurement). The stages run through `llmkit.pipeline` (one process
each, finished stages kept when started again); the report is `llmkit.pipeline_report`.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
QUICKSTART = RECIPES_DIR / "pipelines" / "instructgpt_smollm2.yaml"


def run(pipeline_file: str | Path, main, output: str | Path | None = None, fast: bool = False,
        var_overrides: list[str] = ()) -> Path:
    """Run a pipeline file and write its report; -> OUTPUT/report.md. `main` is the CLI's entry point,
    which each stage runs. Raises LlmkitError."""
    from llmkit.pipeline import load_pipeline, preload, run_pipeline
    from llmkit.pipeline_report import headline_rows, summary, write_report

    p = load_pipeline(pipeline_file, output=output, fast=fast, var_overrides=var_overrides)
    t0 = time.perf_counter()
    print(f"{p.name}: {len(p.stages)} stages into {p.output}/{' (--fast)' if fast else ''}", flush=True)
    preload()
    record = run_pipeline(p, main, summarize=summary)
    command = "llmkit " + shlex.join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name in ("llmkit", "__main__.py") else None
    report = write_report(p, record, command=command)
    print()
    for stage, measured, before, after in headline_rows(p):
        print(f"  {stage:<18} {measured}: {before + ' -> ' if before else ''}{after}")
    print(f"\n{time.perf_counter() - t0:.0f} s. report: {report} and {report.with_suffix('.html')} (open it in a browser)")
    return report


def quickstart(main, output: str | Path = "runs/quickstart", fast: bool = False) -> Path:
    return run(QUICKSTART, main, output=output, fast=fast)
