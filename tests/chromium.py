"""A headless Chromium for tests that must see a page the way a browser does.

`ensure_chromium()` returns the browser's path: the first of `chromium`, `chromium-browser`,
`google-chrome` on PATH, or else Debian's `chromium` package installed with apt-get (only when
running as root with apt-get available; nothing is cached in the repository). When no browser
can be had it raises `ChromiumUnavailable`, whose message the caller passes to `pytest.skip`.

`screenshot()` and `dump_dom()` drive it from the command line (`--headless --screenshot`,
`--headless --dump-dom`), each with a timeout and a throwaway profile directory.

    from chromium import ChromiumUnavailable, dump_dom, ensure_chromium
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_TIMEOUT_S = 1200  # first install downloads ~100 MB of .debs
RUN_TIMEOUT_S = 90


class ChromiumUnavailable(RuntimeError):
    """No headless Chromium on this machine and none could be installed."""


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt_installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                       timeout=30)
    return r.returncode == 0 and "install ok installed" in r.stdout


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", package]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    if r.returncode != 0:
        # Stale or missing package lists are the usual cause ("Unable to locate package").
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                       env=env)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    if r.returncode != 0:
        raise ChromiumUnavailable(f"apt-get install {package} failed: {r.stderr.strip()[-500:]}")


@functools.cache
def ensure_chromium() -> str:
    """Path of a headless-capable Chromium, installing Debian's package if needed and allowed."""
    path = find_chromium()
    if path:
        return path
    if _apt_installed("chromium"):
        # Installed but not on PATH (a trimmed PATH): Debian puts the launcher here.
        if os.access("/usr/bin/chromium", os.X_OK):
            return "/usr/bin/chromium"
        raise ChromiumUnavailable("package chromium is installed but no chromium binary was found")
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable(f"none of {', '.join(NAMES)} on PATH and no apt-get to install chromium")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(f"none of {', '.join(NAMES)} on PATH; installing chromium needs root")
    t0 = time.monotonic()
    _apt_install("chromium")
    path = find_chromium()
    if not path:
        raise ChromiumUnavailable("apt-get installed chromium but no chromium binary is on PATH")
    print(f"installed chromium with apt-get in {time.monotonic() - t0:.0f} s: {path}")
    return path


def version() -> str:
    r = subprocess.run([ensure_chromium(), "--version"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # A fresh profile per call: no state shared between tests and nothing written to $HOME.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [ensure_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={profile}", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"chromium exited {r.returncode}: {r.stderr.strip()[-1000:]}")
    return r


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 1600,
               timeout: float = RUN_TIMEOUT_S) -> Path:
    """Render `html` at width x height CSS pixels and save the viewport as `png`."""
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}", Path(html).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(html: Path, budget_ms: int = 5000, timeout: float = RUN_TIMEOUT_S) -> str:
    """The DOM after the page has loaded (and its scripts ran, within `budget_ms` of virtual time)."""
    args = [f"--virtual-time-budget={budget_ms}", "--allow-file-access-from-files", "--dump-dom",
            Path(html).resolve().as_uri()]
    return _run(args, timeout).stdout
