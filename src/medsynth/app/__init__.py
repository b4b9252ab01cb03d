"""The interactive app (Streamlit) over a results folder: Generate, Enhance, Explore, Compare, Counterfactual.

Start it with `medsynth app --results results` (or `make app`); it listens on 127.0.0.1. The pages read what the
workflow wrote and call the workflow's own loaders, samplers and preprocessing; they compute no metric.
Page modules (medsynth.app.views.*; not `pages/`: Streamlit runs files there as standalone pages) hold the
widgets; the logic they call lives in models, outputs and enhance.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP_SCRIPT = Path(__file__).with_name("streamlit_app.py")
RESULTS_ENV = "MEDSYNTH_RESULTS"
CONFIG_ENV = "MEDSYNTH_CONFIGFILES"   # os.pathsep-separated config files (the Enhance page's dataset settings)


def streamlit_command(port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), "--server.address", address,
            "--server.port", str(int(port)), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer"]


def app_environment(results: str | os.PathLike, config_files=()) -> dict:
    env = {**os.environ, RESULTS_ENV: str(Path(results).resolve())}
    if config_files:
        env[CONFIG_ENV] = os.pathsep.join(str(Path(c).resolve()) for c in config_files)
    return env


def launch(results: str | os.PathLike, port: int = 8501, address: str = "127.0.0.1", config_files=()) -> int:
    """Run the app in the foreground until interrupted. This process becomes the Streamlit server (exec), so a
    signal sent to `medsynth app` (kill, a process manager, a test's terminate) stops the server: a child server
    outlives a terminated parent and keeps the port. Where exec is not POSIX (Windows), a child it is."""
    print(f"medsynth app on http://{address}:{port} (results: {results}); Ctrl-C stops it", flush=True)
    cmd, env = streamlit_command(port, address), app_environment(results, config_files)
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)  # does not return
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
