"""AIIB23 (MICCAI 2023 airway challenge) CT + lung/airway masks + clinical table -> raw manifest (kind 'volume').

Layout (root = the dataset folder; train/ and val/ subfolders optional):
  [train|val/]img/AIIB23_4.nii.gz          CT in HU
  [train|val/]gtlung/AIIB23_4.nii.gz       lung + airway mask (DGM-VLC's folder name); else gt/ (airway, as the
                                           challenge ships it), mask/, masks/, label/ or labels/
  <any>.csv                                 clinical table with a 'Mapping ID' column naming the CT file
                                           (DGM-VLC's data_info sheet, saved as CSV)
Prompt = tabular text of the patient's clinical row with rules 'aiib23' (or `tabular_rules`); clinical columns are
kept in the manifest (except 'Mapping ID') so attributes can be edited and re-rendered (xing2024, Figure 4).
A CT without a clinical row keeps an empty prompt and has_clinical = False. Split: the folder's train/val where
the layout has one, else a keyed hash of the patient (the CT file name).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from ..ids import pseudonym
from ..manifest import CHEXPERT_LABELS, patient_split
from ..tabular_text import load_rules, row_to_text

IMAGE_DIRS = ("img", "images", "imagesTr")
MASK_DIRS = ("gtlung", "gt", "mask", "masks", "label", "labels", "labelsTr")
ID_COLUMN = "Mapping ID"
_OFFICIAL = {"train": "train", "training": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}


def stem(path: Path | str) -> str:
    name = Path(str(path)).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_volumes(root: Path) -> list[tuple[Path, Path]]:
    pairs, unmatched = [], []
    image_dirs = sorted(d for d in root.rglob("*") if d.is_dir() and d.name in IMAGE_DIRS)
    for image_dir in image_dirs:
        mask_dir = next((image_dir.parent / m for m in MASK_DIRS if (image_dir.parent / m).is_dir()), None)
        for ct in sorted(p for p in image_dir.iterdir() if p.name.endswith((".nii.gz", ".nii"))):
            mask = None
            if mask_dir is not None:
                mask = next((mask_dir / f"{stem(ct)}{s}" for s in (".nii.gz", ".nii")
                             if (mask_dir / f"{stem(ct)}{s}").is_file()), None)
            if mask is None:
                unmatched.append(ct)
            else:
                pairs.append((ct, mask))
    if unmatched:
        raise MedsynthError(f"AIIB23: {len(unmatched)} CT volumes have no mask (e.g. {unmatched[0].relative_to(root)};"
                            f" looked in sibling folders {', '.join(MASK_DIRS)})")
    if not pairs:
        raise MedsynthError(f"AIIB23: no CT volumes in {'/'.join(IMAGE_DIRS)} folders below {root}")
    return pairs


def read_clinical(root: Path) -> pd.DataFrame:
    tables = []
    for path in sorted(root.rglob("*.csv")):
        head = pd.read_csv(path, nrows=0)
        if ID_COLUMN in head.columns:
            tables.append(pd.read_csv(path, keep_default_na=True))
    if not tables:
        xlsx = sorted(root.rglob("*.xlsx"))
        hint = f" ({xlsx[0].name} found: save it as CSV)" if xlsx else ""
        raise MedsynthError(f"AIIB23: no clinical table (CSV with a '{ID_COLUMN}' column) below {root}{hint}")
    table = pd.concat(tables, ignore_index=True)
    table["_key"] = table[ID_COLUMN].map(stem)
    dup = table["_key"].duplicated()
    if dup.any():
        raise MedsynthError(f"AIIB23: clinical table lists {table['_key'][dup].iloc[0]} twice")
    return table.set_index("_key")


def official_split(ct: Path, root: Path) -> str | None:
    for part in ct.relative_to(root).parts[:-1]:
        if part.lower() in _OFFICIAL:
            return _OFFICIAL[part.lower()]
    return None


def build(ctx) -> pd.DataFrame:
    root = ctx.root
    pairs = find_volumes(root)
    clinical = read_clinical(root)
    rules = load_rules(ctx.cfg.get("tabular_rules") or "aiib23")
    keys = pd.Series([stem(ct) for ct, _ in pairs])
    if keys.duplicated().any():
        raise MedsynthError(f"AIIB23: CT name {keys[keys.duplicated()].iloc[0]} appears in two folders")
    attrs = clinical.drop(columns=[ID_COLUMN]).reindex(keys.to_numpy())
    has = keys.isin(clinical.index).to_numpy()
    prompts = [row_to_text(r, rules) if h else "" for r, h in zip(attrs.to_dict("records"), has)]
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", k) for k in keys],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", k) for k in keys],
        "source": [str(ct.resolve()) for ct, _ in pairs],
        "mask_source": [str(m.resolve()) for _, m in pairs],
        "view": "CT",
        "findings": "",
        "impression": "",
        "prompt": prompts,
        "has_clinical": has,
    })
    hashed = patient_split(keys, ctx.split_fractions, ctx.key, ctx.name)
    df["split"] = [official_split(ct, root) or h for (ct, _), h in zip(pairs, hashed)]
    for column in attrs.columns:
        if column in df.columns or column in CHEXPERT_LABELS:
            raise MedsynthError(f"AIIB23: clinical column '{column}' clashes with a manifest column")
        df[column] = attrs[column].to_numpy()
    return df
