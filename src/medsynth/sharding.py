"""Merging shard outputs into one dataset manifest, with the accounting check inputs = outputs + rejects."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import read_table
from .manifest import PRIVATE_COLUMNS, REJECT_COLUMNS

SHARD_MANIFEST = "manifest.parquet"
SHARD_REJECTS = "rejects.csv"


class AccountingError(RuntimeError):
    """Rows went missing or were duplicated between the raw manifest and the shard outputs."""


def merge_shards(raw: pd.DataFrame, shard_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    outs, rejs = [], []
    for d in shard_dirs:
        outs.append(read_table(Path(d) / SHARD_MANIFEST))
        rejs.append(read_table(Path(d) / SHARD_REJECTS))
    out = pd.concat(outs, ignore_index=True) if outs else raw.iloc[:0]
    rej = pd.concat(rejs, ignore_index=True) if rejs else pd.DataFrame(columns=REJECT_COLUMNS)
    rej = rej.astype({"id": str}) if len(rej) else rej
    # Outputs can hold several rows per input (e.g. several 3D crops per volume): account by input id.
    out_ids = set(out["id"].astype(str)) if "source_id" not in out else set(out["source_id"].astype(str))
    rej_ids = set(rej["id"].astype(str)) if len(rej) else set()
    raw_ids = set(raw["id"].astype(str))
    both = out_ids & rej_ids
    missing = raw_ids - out_ids - rej_ids
    extra = (out_ids | rej_ids) - raw_ids
    if both or missing or extra:
        raise AccountingError(
            f"inputs != outputs + rejects: {len(missing)} missing, {len(extra)} unknown, {len(both)} both "
            f"(e.g. {sorted(missing | extra | both)[:3]})"
        )
    # The shareable tables carry pseudonymous ids only; the raw manifest keeps the id -> source mapping.
    out = out.drop(columns=[c for c in PRIVATE_COLUMNS if c in out])
    rej = rej.drop(columns=[c for c in PRIVATE_COLUMNS if c in rej])
    summary = {
        "inputs": len(raw_ids),
        "outputs": len(out_ids),
        "output_rows": int(len(out)),
        "rejects": len(rej_ids),
        "reject_reasons": {str(k): int(v) for k, v in rej["reason"].value_counts().items()} if len(rej) else {},
        "shards": len(shard_dirs),
        "splits": {str(k): int(v) for k, v in out["split"].value_counts().items()} if "split" in out else {},
    }
    return out, rej, summary
