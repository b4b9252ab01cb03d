"""Dataset adapters: one module per dataset layout, each turning its files into a raw manifest.

Every adapter module defines `build(ctx) -> pandas.DataFrame` returning rows with the columns of
`medsynth.manifest` (finalised by `build_manifest`). KINDS says how the sharded preprocessing treats its rows.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from ..manifest import finalize

KINDS = {
    "mimic_cxr": "image", "chexpert": "image", "openi": "image", "covid_radiography": "image",
    "aiib23": "volume", "phantom_cxr": "image", "phantom_ct": "volume", "openi_reports": "table",
    "chexpert_table": "table", "v7labs_lung_masks": "image",
}

ADAPTERS = {
    "mimic_cxr": "mimic_cxr",
    "chexpert": "chexpert",
    "openi": "openi",
    "covid_radiography": "covid_radiography",
    "aiib23": "aiib23",
    "phantom_cxr": "phantom",
    "phantom_ct": "phantom",
    "openi_reports": "openi_reports",
    "chexpert_table": "chexpert_table",
    "v7labs_lung_masks": "v7labs_lung_masks",
}


@dataclass
class AdapterContext:
    name: str                 # the dataset's name in the config
    adapter: str              # the adapter key (ADAPTERS)
    cfg: dict                 # the dataset's config block
    key: bytes                # pseudonymisation key
    results: Path             # the run's results folder
    seed: int = 0
    split_fractions: dict = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})

    @property
    def root(self) -> Path:
        root = self.cfg.get("root")
        if not root:
            raise MedsynthError(f"datasets.{self.name}.root is not set: point it at your {self.adapter} copy")
        path = Path(root).expanduser()
        if not path.is_dir():
            raise MedsynthError(f"datasets.{self.name}.root: folder {path} does not exist")
        return path


def check_listed_files(label: str, sources: list[Path], root: Path) -> None:
    """Files a dataset's metadata lists but that are absent stay in the manifest: preprocessing records each as a
    reject ('missing file') and the rest goes on. Only when none exists is it a config problem (wrong root or
    image_format), stopped here with one line."""
    missing = [p for p in sources if not p.is_file()]
    if sources and len(missing) == len(sources):
        example = missing[0].relative_to(root) if missing[0].is_relative_to(root) else missing[0]
        raise MedsynthError(f"{label}: none of the {len(sources)} images listed in the metadata exists under {root} "
                            f"(e.g. {example}); check root and image_format")
    if missing:
        logging.getLogger(__name__).warning("%s: %d of %d listed images are missing; each is recorded as a reject "
                                            "('missing file')", label, len(missing), len(sources))


def adapter_module(adapter: str):
    if adapter not in ADAPTERS:
        raise MedsynthError(f"unknown adapter '{adapter}' (known: {', '.join(sorted(ADAPTERS))})")
    return importlib.import_module(f"{__name__}.{ADAPTERS[adapter]}")


def build_manifest(ctx: AdapterContext) -> pd.DataFrame:
    df = adapter_module(ctx.adapter).build(ctx)
    limit = ctx.cfg.get("limit")
    if limit:
        df = df.iloc[: int(limit)]
    return finalize(df)
