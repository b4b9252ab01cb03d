"""Sharded preprocessing: one function per kind of dataset row (image, volume, table).

Each takes the rows of one shard and returns (processed rows, rejects): every input row ends up in exactly one of
the two, so the merge step can check inputs = outputs + rejects.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def process_shard(kind: str, rows: pd.DataFrame, cfg: dict, out_dir: Path, results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Process one shard. `cfg` is the dataset's config block; outputs go below `out_dir`; paths written into the
    returned rows are relative to `results`."""
    if kind == "image":
        from .images import process_image_shard as fn
    elif kind == "volume":
        from .volumes import process_volume_shard as fn
    elif kind == "table":
        from .tables import process_table_shard as fn
    else:
        raise ValueError(f"unknown dataset kind {kind!r}")
    return fn(rows, cfg, Path(out_dir), Path(results))
