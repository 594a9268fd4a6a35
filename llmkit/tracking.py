"""What every run writes: the output directory, config.yaml, history.jsonl, metrics.json, and
the peak-memory measurement."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from pathlib import Path

import yaml

from llmkit.errors import LlmkitError

# Keys a run may change when it is started again in the same directory: where it lives and how to start.
RESTART_KEYS = {("output", "dir"), ("output", "overwrite"), ("train", "resume"), ("train", "report_to"),
                ("train", "resume_from_checkpoint")}
CHECKPOINT_DIRS = ("checkpoints", "checkpoint")  # the HF Trainer's, and classify's and ppo's own


def prepare_output_dir(out: str | Path, config: dict, *, overwrite: bool, done_file: str | None = "metrics.json",
                       same_settings: bool = True) -> Path:
    """Create or take back `out` for a run of `config` (its resolved settings), then write config.yaml.

    Refused unless `overwrite`: a finished run (metrics.json); a run of another kind, or an unfinished
    run with other settings (resuming it would mix two runs; the differing keys are named); a directory
    holding files that are not an llmkit run. With `overwrite` a previous run's metrics, history and
    checkpoints go (nothing else is deleted), so the run starts over instead of resuming another one.
    A kind that resumes record by record and may be asked for more (generate) passes `done_file=None,
    same_settings=False`: only the kind and foreign files are checked."""
    from llmkit import faults

    out = Path(out)
    if not overwrite:
        _check_reusable(out, config, done_file, same_settings)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and (out / "config.yaml").is_file():
        for name in ("metrics.json", "history.jsonl"):
            (out / name).unlink(missing_ok=True)
        for name in CHECKPOINT_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    faults.point("start")
    return out


def run_kind(out: Path) -> str | None:
    """The kind of the llmkit run in `out` (its config.yaml), None when there is none."""
    try:
        config = yaml.safe_load((out / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return config.get("kind") if isinstance(config, dict) else None


def _check_reusable(out: Path, config: dict, done_file: str | None, same_settings: bool) -> None:
    hint = "pass output.overwrite=true to start it over, or choose another output.dir"
    if done_file and (out / done_file).exists():
        raise LlmkitError(f"{out} already holds a finished run ({done_file}); {hint}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / "config.yaml").is_file():
        held = sorted(p.name for p in out.iterdir())
        raise LlmkitError(f"{out} holds files that are not an llmkit run ({', '.join(held[:4])}"
                          f"{', ...' if len(held) > 4 else ''}); choose another output.dir")
    try:
        before = yaml.safe_load((out / "config.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise LlmkitError(f"{out / 'config.yaml'} does not parse ({type(e).__name__}); {hint}") from None
    if not isinstance(before, dict):
        raise LlmkitError(f"{out / 'config.yaml'} is not an llmkit run's config; {hint}")
    if before.get("kind") != config.get("kind"):
        raise LlmkitError(f"{out} holds a {before.get('kind')} run, not a {config.get('kind')} one; choose another "
                          f"output.dir")
    now, then = _flat(config), _flat(before)
    changed = [k for k in now.keys() | then.keys()
               if same_settings and k not in RESTART_KEYS and now.get(k) != then.get(k)]
    if changed:
        shown = ", ".join(f"{'.'.join(k)}: {then.get(k)!r} -> {now.get(k)!r}" for k in sorted(changed)[:3])
        raise LlmkitError(f"{out} holds an unfinished run with other settings ({shown}"
                          f"{', ...' if len(changed) > 3 else ''}); run it again with its own settings to resume it, "
                          f"or {hint}")


def _flat(d: dict, prefix: tuple = ()) -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, (*prefix, k)))
        else:
            flat[(*prefix, k)] = v
    return flat


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
    return str(path), checkpoint_step(path)


def checkpoint_step(path: str | Path) -> int:
    """The global step an HF Trainer checkpoint directory was saved at."""
    return json.loads((Path(path) / "trainer_state.json").read_text())["global_step"]


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
    every line it logged). On resume, lines past the resumed step (their `key`) are dropped: the
    resumed run logs them again."""

    def __init__(self, path: str | Path, resume_step: int | None = None, key: str = "step", trackers=None):
        self.path, self.key, self.trackers = Path(path), key, trackers  # trackers: llmkit.trackers.Trackers
        if resume_step is None and self.path.exists():
            self.path.unlink()
        elif resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get(key, 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, **record) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_finite(record), default=_jsonable, allow_nan=False) + "\n")
            fh.flush()
        if self.trackers is not None:
            self.trackers.log(record, self.key)

    def close(self) -> None:
        """Finish the trackers (history.jsonl itself is closed after every line)."""
        if self.trackers is not None:
            self.trackers.finish()


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
