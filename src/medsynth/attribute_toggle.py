"""Attribute-toggle heatmaps of a text-conditioned 3D model (xing2024 Figure 4), scored against ground truth.

For each crop (its mask and tabular row) and seed, two volumes are generated whose clinical texts differ in ONE
attribute (e.g. smoking_status never -> current; the text rebuilt by the dataset's declarative tabular rules); the
heatmap is the voxel-wise |difference|. Where the phantom knows the region the attribute acts on (its 3D lesion map:
emphysema bit, in smokers), the score is the share of the heatmap's mass (inside the lungs) that lies in that
region minus the region's share of lung volume: 0 = no preference, > 0 = the model changes that region more. The same
score for a neutral attribute (sex) is the null arm. Means and standard errors are over (crop, seed) units. Only
crops whose lungs contain the region are scored (`region_crops`): a crop without it has no ground truth to score.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import MedsynthError
from .phantom.findings import FINDING_BITS
from .tabular_text import load_rules, row_to_text

EMPHYSEMA_BIT = FINDING_BITS["emphysema"]  # the lesion maps are bitmasks: a voxel may carry several findings
LUNG_CHANNELS = (1, 2)    # right and left lung of the crops' one-hot mask
ATTRIBUTES = ["age", "sex", "smoking_status", "pack_years", "occupational_exposure"]


def toggle_tables(rows: pd.DataFrame, column: str, values, rules_name: str, seeds) -> tuple[pd.DataFrame, ...]:
    """Two prompt tables (value a, value b) of the same rows and seeds: only `column` differs in the text."""
    if column not in rows:
        raise MedsynthError(f"attribute toggle: the manifest has no column '{column}'")
    rules = load_rules(rules_name)
    # The text is rebuilt from the rule file's columns (other manifest columns, e.g. labels, never reach it).
    attrs = [c for c in (ATTRIBUTES if rules.other_columns else rules.column_names()) if c in rows]
    out = []
    for value in values:
        parts = []
        for seed in seeds:
            t = rows.copy()
            t[column] = value
            t["prompt"] = [row_to_text(r, rules) for r in t[attrs].to_dict("records")]
            parts.append(t.assign(seed=int(seed)))
        table = pd.concat(parts, ignore_index=True)
        out.append(table.assign(file=[f"{i:05d}.npz" for i in range(len(table))]))
    if out[0]["prompt"].equals(out[1]["prompt"]):
        raise MedsynthError(f"attribute toggle: values {list(values)} of '{column}' give the same text")
    return tuple(out)


def lesion_crop(row: dict, spacing, crop) -> np.ndarray:
    """The phantom's 3D lesion label map cut exactly like the row's crop (canonical, nearest resample, padding)."""
    from .preprocess.volumes import _load_canonical, pad_to, resample, spacing_from_affine

    path = row.get("lesion_source")
    if not isinstance(path, str) or not path or not Path(path).is_file():
        raise MedsynthError(f"crop {row.get('source_id', '?')}: no lesion map ({path!r})")
    raw, affine = _load_canonical(path, "mask", as_float=False)
    labels = resample(raw, spacing_from_affine(affine), tuple(spacing), order=0)
    labels, before = pad_to(labels, tuple(crop), 0)
    o = [int(row[f"crop_{a}"]) + int(b) for a, b in zip("xyz", before)]
    return labels[o[0]:o[0] + crop[0], o[1]:o[1] + crop[1], o[2]:o[2] + crop[2]]


def region_crops(rows: pd.DataFrame, results: Path, spacing, crop, bit: int = EMPHYSEMA_BIT,
                 limit: int | None = None) -> tuple[pd.DataFrame, list[np.ndarray], list[np.ndarray], int]:
    """The first `limit` rows whose crop has finding `bit` inside the lungs, with that region's and the lungs' boolean
    crops, and the number of rows scanned. Rows without a lesion map (real data) are skipped: no ground truth."""
    keep, regions, lungs = [], [], []
    for i, row in enumerate(rows.to_dict("records")):
        if limit and len(keep) >= limit:
            return rows.iloc[keep].reset_index(drop=True), regions, lungs, i
        if not isinstance(row.get("lesion_source"), str) or not row["lesion_source"]:
            continue
        lung = np.load(Path(results) / row["mask"], allow_pickle=False)["mask"][list(LUNG_CHANNELS)].any(0)
        region = (lesion_crop(row, spacing, crop) & np.uint8(1 << bit)) > 0
        if (region & lung).any():
            keep.append(i)
            regions.append(region)
            lungs.append(lung)
    return rows.iloc[keep].reset_index(drop=True), regions, lungs, len(rows)


def region_score(heat: np.ndarray, region: np.ndarray, lung: np.ndarray) -> tuple[float, float] | None:
    """(share of heat mass in region within lung, region's share of lung volume); None without region or heat."""
    inside = region & lung
    if not inside.any() or not lung.any():
        return None
    mass = float(heat[lung].sum())
    if mass <= 0:
        return None
    return float(heat[inside].sum()) / mass, float(inside.sum()) / float(lung.sum())


def mean_se(values) -> tuple[float | None, float | None, int]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None, 0
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), se, int(v.size)
