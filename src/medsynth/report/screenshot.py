"""A PNG of a rendered report page, taken by headless Chromium (when it is installed), so a run keeps a picture
of what a reader sees."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import MedsynthError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# The machine may have no network: keep Chromium from trying to reach anything.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1600, timeout: int = 120) -> None:
    browser = find_browser()
    if browser is None:
        raise MedsynthError("no headless browser found for the report screenshot: apt-get install chromium")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", Path(html).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file():
        raise MedsynthError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
