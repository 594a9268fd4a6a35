"""Named points where a test kills a run the way a lost machine would.

`LLMKIT_KILL_AT=<point>[@<n>]` makes the process SIGKILL itself the n-th time (default: the first)
it reaches `point(<point>)`: no `finally`, no atexit, no flush of open files, exactly what a power
cut or the OOM killer leaves behind. Unset (always, outside tests) a point is one dictionary lookup.

The points every kind reaches, in the order a run reaches them (tests/test_kill_resume.py kills at
each and checks that the run, started again, ends with the uninterrupted run's metrics.json):
    start       the output directory and config.yaml are written, nothing has trained
    checkpoint  inside a checkpoint save: the weights are written, the state that completes it is not
    train       a checkpoint is complete, training goes on
    model       model/ is saved, the report and metrics.json are not
    report      report.md is written, report.html and metrics.json are not
"""

from __future__ import annotations

import os
import signal
import sys

_reached: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get("LLMKIT_KILL_AT")
    if not spec:
        return
    want, _, nth = spec.partition("@")
    if want != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
