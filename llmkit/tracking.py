"""What every run writes: the output directory, config.yaml, history.jsonl, metrics.json, and
the peak-memory measurement."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import yaml

from llmkit.errors import LlmkitError


def prepare_output_dir(out: str | Path, config: dict, *, overwrite: bool) -> Path:
    """Create `out`, refuse to clobber a finished run, write the resolved config."""
    out = Path(out)
    if (out / "metrics.json").exists() and not overwrite:
        raise LlmkitError(f"{out} already holds a finished run (metrics.json); pass output.overwrite=true "
                          f"or choose another output.dir")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and (out / "metrics.json").exists():
        (out / "metrics.json").unlink()
        if (out / "history.jsonl").exists():
            (out / "history.jsonl").unlink()
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return out


RUN_MARKERS = ("metrics.json", "config.yaml", "history.jsonl", "adapter_config.json")


def check_output_dir(out: str | Path, *, inputs=(), flag: str = "--output") -> None:
    """Refuse an output directory that is an input, lies inside one or holds one, or holds a run or an
    adapter (the markers above): a verb other than train never writes into another run."""
    out = Path(out).resolve()
    for given in inputs:
        src = Path(given).resolve()
        if out == src or src in out.parents or out in src.parents:
            rel = "is" if out == src else "lies inside" if src in out.parents else "holds"
            raise LlmkitError(f"{flag} {out} {rel} the input {src}; choose a directory of its own")
    held = [m for m in RUN_MARKERS if (out / m).exists()]
    if held:
        raise LlmkitError(f"{flag} {out} holds another run ({', '.join(held)}); choose a directory of its own")


def last_checkpoint(ckpt_dir: str | Path) -> tuple[str, int] | tuple[None, None]:
    """(path, global step) of the newest COMPLETE HF Trainer checkpoint under `ckpt_dir`, or
    (None, None). The Trainer writes a checkpoint in place and its trainer_state.json last, so a
    run killed while saving leaves a newer directory without it: skip that one and resume from
    the one before (transformers' get_last_checkpoint would pick it and fail)."""
    ckpt_dir = Path(ckpt_dir)
    done = [(int(d.name.split("-")[-1]), d) for d in ckpt_dir.glob("checkpoint-*")
            if d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").is_file()] if ckpt_dir.is_dir() else []
    if not done:
        return None, None
    _, path = max(done)
    return str(path), json.loads((path / "trainer_state.json").read_text())["global_step"]


def write_json(path: str | Path, obj) -> None:
    """Write atomically, so a kill never leaves half a file; NaN and infinity become null (JSON has
    neither: a bare `NaN` makes the file unreadable to strict parsers)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=2, default=_jsonable, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finite(o):
    """`o` with every NaN or infinite float (tensor and numpy scalars included) replaced by None."""
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class History:
    """history.jsonl: one JSON object per logged step, flushed as written (a killed run keeps
    every line it logged). On resume, lines past the resumed step are dropped."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is None and self.path.exists():
            self.path.unlink()
        elif resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, **record) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_finite(record), default=_jsonable, allow_nan=False) + "\n")
            fh.flush()


def read_history(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory while the block runs: GPU allocator peak on CUDA, else the process's resident
    set size sampled every 20 ms (which includes the loaded model, as a user's machine sees it)."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self.kind = interval, 0, "cpu_rss"
        self._stop = threading.Event()

    def __enter__(self):
        import torch

        if torch.cuda.is_available():
            self.kind = "cuda_max_allocated"
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        import torch

        if self.kind == "cuda_max_allocated":
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())
        return False

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)
