"""Fake pretrained models for DAG-build tests: a Hugging Face cache (HF_HUB_CACHE layout) holding, for every model a
config loads (medsynth.models.hub.run_models), its config file and a placeholder *.safetensors file."""
from __future__ import annotations

from pathlib import Path

FAKE_COMMIT = "0" * 40


def fake_hf_cache(cache: Path, config: dict) -> Path:
    from medsynth.models.hub import run_models

    for need in run_models(config):
        repo = cache / f"models--{need.name.replace('/', '--')}"
        commit = need.revision or FAKE_COMMIT
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        snap = repo / "snapshots" / commit
        (snap / need.config_file).parent.mkdir(parents=True, exist_ok=True)
        (snap / need.config_file).write_text("{}")
        (snap / need.weights_dir / "model.safetensors").write_bytes(b"")
    return cache
