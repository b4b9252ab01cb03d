"""What every training stage does around its loop (`stages`, `distill`): read its model entry (`train:` block,
`pretrained:` base), take its split's rows, keep or clear its work folder, restore the best-validation weights.
A leaf module of ``training``: the stages build on it, it imports none of them."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..errors import MedsynthError
from .loop import TrainConfig, distributed_state


def train_config(block: dict, seed: int) -> TrainConfig:
    """A `train:` config block -> TrainConfig, naming unknown keys."""
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(block) - known)
    if unknown:
        raise MedsynthError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
    values = {**block, "seed": seed}
    for key in ("placeholder_tokens", "sample_prompts"):
        if key in values:
            values[key] = tuple(values[key])
    return TrainConfig(**values)


def is_pretrained(model_cfg: dict) -> bool:
    return bool(model_cfg.get("pretrained"))


def base_model(model_cfg: dict) -> str | None:
    """The model entry this entry starts from (`pretrained: {model: <entry>}`), or None."""
    pre = model_cfg.get("pretrained") or {}
    if pre.get("model") and pre.get("name"):
        raise MedsynthError(f"pretrained has both `name` ({pre['name']}) and `model` ({pre['model']}): give one")
    return pre.get("model") or pre.get("from_model") or None


def pipeline_dir(results: str | Path, model: str) -> Path:
    """Where a model entry's trained diffusers pipeline lives."""
    return Path(results) / "models" / model / "pipeline"


def resolve_pretrained(model_cfg: dict, results: str | Path) -> dict:
    """`pretrained: {model: <entry>}` -> `pretrained: {name: <results>/models/<entry>/pipeline, from_model: <entry>}`
    (the folder load_stable_diffusion reads); any other entry is returned unchanged."""
    base = base_model(model_cfg)
    if base is None or not model_cfg["pretrained"].get("model"):
        return model_cfg
    pre = {k: v for k, v in model_cfg["pretrained"].items() if k != "model"}
    return {**model_cfg, "pretrained": {**pre, "name": str(pipeline_dir(results, base)), "from_model": base}}


def split_rows(df, splits: Sequence[str]):
    rows = df[df["split"].isin(list(splits))].reset_index(drop=True)
    if rows.empty:
        raise MedsynthError(f"the manifest has no rows in split(s) {list(splits)}")
    return rows


def count_parameters(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def prepare_work_dir(work_dir: Path, identity: dict) -> bool:
    """Checkpoints in work_dir resume a killed run only when they belong to the same run (model entry, stage,
    seed): otherwise they are removed, so a changed config never continues from stale weights. True if kept."""
    import json
    import shutil

    work_dir = Path(work_dir)
    stamp = work_dir / "run.json"
    identity = {**identity, "model": {k: v for k, v in identity.get("model", {}).items() if k != "prompt_sets"}}
    text = json.dumps(identity, sort_keys=True, default=str)
    keep = stamp.is_file() and stamp.read_text() == text
    if is_main():
        if not keep:
            for stale in ("checkpoints", "best", "class_images", "tensorboard", "samples"):
                shutil.rmtree(work_dir / stale, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(text)
    distributed_state().wait_for_everyone()
    return keep


def is_main() -> bool:
    return distributed_state().is_main_process


def restore_best(work_dir: Path, modules: dict) -> bool:
    """Early stopping keeps the best-validation weights (work_dir/best); the final model is those weights."""
    from safetensors.torch import load_file

    best = Path(work_dir) / "best"
    if not modules or not all((best / f"{n}.safetensors").is_file() for n in modules):
        return False
    for name, module in modules.items():
        module.load_state_dict(load_file(str(best / f"{name}.safetensors")))
    return True
