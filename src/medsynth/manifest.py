"""The manifest: one table per dataset, the contract between every stage (DESIGN.md, 'Data flow').

Raw manifests (from an adapter) point at source files in `source` / `mask_source`; processed manifests (after the
sharded preprocessing) add `image` / `mask`: paths relative to the run's results folder.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .ids import pseudonym

CHEXPERT_LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]
# Label values follow the CheXpert convention: 1 positive, 0 negative, -1 uncertain, NaN not mentioned.

REQUIRED_COLUMNS = ["id", "patient_id", "split", "source", "view", "findings", "impression", "prompt"]
OPTIONAL_TEXT_COLUMNS = ["indication", "mask_source"]
REJECT_COLUMNS = ["id", "source", "reason", "detail"]
# Original file paths name subjects and studies (MIMIC's p10000032/s50414267): they stay in the private raw
# manifest (<results>/manifests/, the id -> source mapping) and the shard intermediates, never in the shareable
# dataset outputs (<results>/data/<dataset>/: manifest, rejects, summary).
PRIVATE_COLUMNS = ["source", "mask_source"]
SPLITS = ("train", "val", "test")


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})


def patient_split(patient_keys: pd.Series, fractions: dict, key: bytes, namespace: str) -> pd.Series:
    """Assign each row a split by hashing its patient, so all images of one patient share a split.

    The hash makes the assignment stable when rows are added or reordered; the fractions are met in expectation, and every split with a positive fraction gets at least one patient
    when there are enough patients.
    """
    fr = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    total = sum(fr.values())
    if total <= 0:
        raise ValueError("split fractions must sum to a positive number")
    edges = np.cumsum([fr[s] / total for s in SPLITS])
    unique = pd.Series(patient_keys.astype(str).unique())
    u = unique.map(lambda p: int(pseudonym(key, namespace + "/split", p, 12), 16) / float(16**12))
    which = np.searchsorted(edges, u.to_numpy(), side="right").clip(0, len(SPLITS) - 1)
    # Small cohorts: a split with a positive fraction must not come out empty (a test set of nobody). Give it the
    # patient whose hash lies nearest its interval, taken from a split that can spare one; large cohorts never
    # reach this, so their assignment stays the stable hash one.
    starts = np.concatenate([[0.0], edges[:-1]])
    for i, s in enumerate(SPLITS):
        counts = np.bincount(which, minlength=len(SPLITS))
        if fr[s] > 0 and counts[i] == 0:
            spare = np.flatnonzero(counts[which] > 1)
            if spare.size:
                centre = (starts[i] + edges[i]) / 2
                which[spare[np.argmin(np.abs(u.to_numpy()[spare] - centre))]] = i
    mapping = dict(zip(unique, (SPLITS[i] for i in which)))
    return patient_keys.astype(str).map(mapping)


def finalize(df: pd.DataFrame) -> pd.DataFrame:
    """Fill the required columns an adapter did not set and put them first, in a fixed order."""
    df = df.copy()
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    text_cols = ["source", "view", "findings", "impression", "prompt"] + [c for c in OPTIONAL_TEXT_COLUMNS if c in df]
    for col in text_cols:
        df[col] = df[col].fillna("").astype(str)
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise ValueError(f"manifest ids are not unique (first duplicate: {dup})")
    rest = [c for c in df.columns if c not in REQUIRED_COLUMNS]
    return df[REQUIRED_COLUMNS + rest].reset_index(drop=True)
