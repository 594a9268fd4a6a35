"""Hub access that fails fast offline.

transformers and datasets retry an unreachable hub for about 25 seconds before giving up. llmkit
first looks in the local cache, then checks in two seconds whether the hub answers at all, and
otherwise stops at once with a message that says how to pass a local path instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse


def cache_dir() -> Path:
    """llmkit's own cache (built tiny models, cached features): $LLMKIT_CACHE or ~/.cache/llmkit."""
    root = os.environ.get("LLMKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llmkit")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline_forced() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the Hugging Face Hub (or $HF_ENDPOINT) accepts a TCP connection."""
    if offline_forced():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_path_like(name: str) -> bool:
    """A name the user meant as a filesystem path (so a hub lookup makes no sense)."""
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(name))


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """`target` if it already holds a model (config.json), else `build(tmp)` beside it and rename:
    a killed build never leaves a half-written model, and two racing builds keep one. The build runs
    with the caller's random stream set aside: a run that builds its model on first use (the builders
    seed torch) draws the same initialisation, dropout and shuffling as one that finds it built."""
    if (target / "config.json").is_file():
        return target
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp (and safetensors) make owner-only files; the cache is read like any model dir
        for f in tmp.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
