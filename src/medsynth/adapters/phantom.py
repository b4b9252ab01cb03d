"""The phantom cohort (medsynth.phantom) -> raw manifests: 'phantom_cxr' (image rows: one per radiograph view) and
'phantom_ct' (volume rows: CT + lung/airway segmentation).

Reads results/raw/phantom/cohort.parquet (rule phantom_cohort). Both datasets pseudonymise the virtual patient in
one namespace ('phantom/patient') and split with one namespace ('phantom'), so a patient's radiograph and CT share
patient_id and split. The cohort's patient keys (PH000123) are not carried into the manifests.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from ..ids import pseudonym
from ..manifest import CHEXPERT_LABELS, patient_split
from ..phantom.attributes import FINDINGS
from ..tabular_text import load_rules, row_to_text

ATTRIBUTES = ["age", "sex", "smoking_status", "pack_years", "occupational_exposure"]
FINDING_COLUMNS = [c for f in FINDINGS for c in (f, f"{f}_severity", f"{f}_side", f"{f}_location")] + \
    ["nodule_size_mm", "finding_list"]
NAMESPACE = "phantom"


def cohort_dir(ctx) -> Path:
    return Path(ctx.results) / "raw" / "phantom"


def read_cohort(ctx) -> pd.DataFrame:
    path = cohort_dir(ctx) / "cohort.parquet"
    if not path.is_file():
        raise MedsynthError(f"{path} does not exist: the phantom cohort is made by rule phantom_cohort")
    table = pd.read_parquet(path)
    missing = [c for c in ["patient_key", "cxr_pa", "ct", "seg", *ATTRIBUTES, *CHEXPERT_LABELS] if c not in table]
    if missing:
        raise MedsynthError(f"{path} lacks columns {', '.join(missing)}: regenerate the phantom cohort")
    return table


def _abs(base: Path, rel: pd.Series) -> list[str]:
    return [str((base / r).resolve()) if isinstance(r, str) and r else "" for r in rel]


def _common(ctx, table: pd.DataFrame, keys: pd.Series) -> dict:
    return {
        "patient_id": [pseudonym(ctx.key, f"{NAMESPACE}/patient", k) for k in keys],
        "split": patient_split(keys, ctx.split_fractions, ctx.key, NAMESPACE).to_numpy(),
    }


def build_cxr(ctx, table: pd.DataFrame) -> pd.DataFrame:
    base = cohort_dir(ctx)
    parts = []
    for view, col in (("PA", "cxr_pa"), ("LL", "cxr_ll")):
        if col not in table:
            continue
        t = table[table[col].fillna("").astype(str) != ""].reset_index(drop=True)
        if t.empty:
            continue
        keys = t["patient_key"].astype(str)
        has_lesion = t["finding_list"].astype(str) != "no_finding"
        mask = _abs(base, t[f"lesion2d_{view.lower()}"])
        df = pd.DataFrame({
            "id": [pseudonym(ctx.key, f"{ctx.name}/image", f"{k}/{view}") for k in keys],
            **_common(ctx, t, keys),
            "source": _abs(base, t[col]),
            "mask_source": [m if h else "" for m, h in zip(mask, has_lesion)],
            "view": view,
            "findings": t["findings"].to_numpy(),
            "impression": t["impression"].to_numpy(),
            "prompt": [f"FINDINGS: {f} IMPRESSION: {i}" for f, i in zip(t["findings"], t["impression"])],
        })
        for c in CHEXPERT_LABELS + ATTRIBUTES + FINDING_COLUMNS:
            df[c] = t[c].to_numpy()
        parts.append(df)
    if not parts:
        raise MedsynthError("the phantom cohort has no radiographs")
    return pd.concat(parts, ignore_index=True)


def build_ct(ctx, table: pd.DataFrame) -> pd.DataFrame:
    base = cohort_dir(ctx)
    rules = load_rules(ctx.cfg.get("tabular_rules") or "phantom")
    keys = table["patient_key"].astype(str)
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", f"{k}/CT") for k in keys],
        **_common(ctx, table, keys),
        "source": _abs(base, table["ct"]),
        "mask_source": _abs(base, table["seg"]),
        "lesion_source": _abs(base, table["lesion3d"]),
        "view": "CT",
        "findings": table["findings"].to_numpy(),
        "impression": table["impression"].to_numpy(),
        "prompt": [row_to_text(r, rules) for r in table[ATTRIBUTES].to_dict("records")],
    })
    for c in CHEXPERT_LABELS + ATTRIBUTES + FINDING_COLUMNS:
        df[c] = table[c].to_numpy()
    return df


def build(ctx) -> pd.DataFrame:
    table = read_cohort(ctx)
    if ctx.adapter == "phantom_cxr":
        return build_cxr(ctx, table)
    if ctx.adapter == "phantom_ct":
        return build_ct(ctx, table)
    raise MedsynthError(f"adapters.phantom serves phantom_cxr and phantom_ct, not {ctx.adapter!r}")
