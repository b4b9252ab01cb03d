"""The model-family registry: a `models:` entry's `kind:` names the family that builds, trains, saves, loads,
samples and (where it applies) edits it. Papers compose families; the generic train/sample/edit rules and
`medsynth train` dispatch through here, so a new family is one module plus one `register` line.

A family module (e.g. `medsynth.families.ldm2d`) provides:

    train_stage(stage: str, job: StageJob) -> dict
        Train one named stage in this process (all processes of an `accelerate launch` call it; only the main
        process writes), save it to `job.out` (safetensors, a folder that `load` reloads) and return the summary.
        Training goes through the one shared loop, `medsynth.training.loop.run_training` (resume, EMA, logging,
        checkpoints under `job.work`, accelerate).
    load(folder: Path, device: str) -> model
        Reload the folder of the family's last stage (the `sample_dir`).
    sample(model, table: DataFrame, out_dir: Path, spec: dict, results: Path, device: str) -> DataFrame
        Generate one output per row of `table` (a resolved prompt set: prompt, seed, and for dataset-drawn sets the
        source row's columns such as mask) into out_dir/<table.file>, batched and seeded (row i depends only on its
        own conditions and seed); return the table with any columns the family adds (sampler, steps, ...).
    edit(model, table, out_dir, spec, results, device) -> DataFrame            (families with `can_edit`)
        Edit the real image of each row (`source_image`, relative to results) towards its `prompt` at `strength`.

Each stage's config block is `model_cfg[<stage>]` with its optimiser settings under `train:` (the keys of
`medsynth.training.loop.TrainConfig`), so `launch` finds e.g. mixed precision without knowing the family.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import MedsynthError


@dataclass(frozen=True)
class Family:
    kind: str
    module: str                              # implementation module, imported on first use (no torch at DAG build)
    stages: tuple[str, ...]                  # training stages in order; a stage may read every earlier one's folder
    description: str = ""
    stage_dirs: dict = field(default_factory=dict)   # stage -> folder under models/<model>/ (default: the stage name)
    markers: dict = field(default_factory=dict)      # stage -> file inside its folder that marks it done
    can_edit: bool = False
    outputs: str = "png"                     # what sample writes per row: png (2D image) | npz (3D volume crop)

    def stage_dir(self, stage: str) -> str:
        self.check_stage(stage)
        return self.stage_dirs.get(stage, stage)

    def marker(self, stage: str) -> str:
        """Path of a stage's done-marker relative to models/<model>/ (a Snakemake output of its train rule)."""
        return f"{self.stage_dir(stage)}/{self.markers.get(stage, 'family.json')}"

    @property
    def sample_dir(self) -> str:
        """The folder `load` reads: the last stage's."""
        return self.stage_dir(self.stages[-1])

    def check_stage(self, stage: str) -> None:
        if stage not in self.stages:
            raise MedsynthError(f"model family '{self.kind}' has no training stage '{stage}'; its stages: "
                                f"{', '.join(self.stages)}")

    def impl(self) -> ModuleType:
        return importlib.import_module(self.module)

    # thin dispatch, so callers never import a family module by name
    def train_stage(self, stage: str, job: "StageJob") -> dict:
        self.check_stage(stage)
        return self.impl().train_stage(stage, job)

    def load(self, folder: str | Path, device: str = "cpu"):
        return self.impl().load(Path(folder), device)

    def sample(self, model, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
        return self.impl().sample(model, table, Path(out_dir), spec, Path(results), device)

    def edit(self, model, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
        if not self.can_edit:
            raise MedsynthError(f"model family '{self.kind}' cannot edit images (no `edit`); families that can: "
                                f"{', '.join(k for k, f in FAMILIES.items() if f.can_edit)}")
        return self.impl().edit(model, table, Path(out_dir), spec, Path(results), device)


@dataclass
class StageJob:
    """Everything one training stage reads and writes."""
    model_cfg: dict
    manifest: "object"                       # pandas DataFrame of the entry's rows (split column, paths rel. results)
    results: Path                            # the folder the manifest's paths are relative to
    work: Path                               # checkpoints (resumed from), caches, logs of this stage
    out: Path                                # the stage's saved folder
    seed: int = 0
    inputs: dict = field(default_factory=dict)   # earlier stages' folders by stage name (e.g. {"vae": Path})


FAMILIES: dict[str, Family] = {}
DEFAULT_KIND = "ldm2d"                       # entries written before families existed have no `kind:`


def register(family: Family) -> Family:
    if family.kind in FAMILIES:
        raise MedsynthError(f"model family '{family.kind}' is registered twice")
    FAMILIES[family.kind] = family
    return family


def family(kind: str) -> Family:
    if kind not in FAMILIES:
        raise MedsynthError(f"unknown model kind '{kind}'; known kinds: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[kind]


def kind_of(model_cfg: dict) -> str:
    return model_cfg.get("kind", DEFAULT_KIND)


def family_of(model_cfg: dict) -> Family:
    """The family of a `models:` entry (its `kind:`, default ldm2d)."""
    return family(kind_of(model_cfg))
