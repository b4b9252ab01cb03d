"""CheXpert (v1.0 / v1.0-small) -> raw manifest.

Layout (root = the folder holding train.csv and valid.csv):
  train.csv, valid.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, 14 labels
  train/patient00001/study1/view1_frontal.jpg, valid/patient64541/...
`Path` starts with the release folder name ('CheXpert-v1.0-small/train/...'); it is resolved against root's parent,
or against root after dropping that first part. The patient is the 'patientNNNNN' part of the path.
Split: valid.csv is CheXpert's official validation set -> 'val'; train.csv patients are split train/test by a keyed
hash of the patient (the official test set is not distributed with the images). CheXpert has no reports: the
prompt is the row's tabular text (rules from `tabular_rules`, default 'chexpert').
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from . import check_listed_files
from ..ids import pseudonym
from ..labels import normalize_view
from ..manifest import CHEXPERT_LABELS, patient_split
from ..tabular_text import load_rules, row_to_text

_PATIENT = re.compile(r"(patient\d+)")


def resolve(root: Path, rel: str) -> Path:
    rel_path = Path(rel)
    first = root.parent / rel_path
    if first.is_file():
        return first
    return root / Path(*rel_path.parts[1:]) if len(rel_path.parts) > 1 else root / rel_path


def view_of(frontal_lateral, ap_pa) -> str:
    if str(frontal_lateral).strip().lower() == "lateral":
        return "LATERAL"
    return normalize_view(ap_pa) or "FRONTAL"


def read_tables(root: Path) -> pd.DataFrame:
    parts = []
    for name, split in (("train.csv", None), ("valid.csv", "val")):
        path = root / name
        if not path.is_file():
            raise MedsynthError(f"CheXpert: {name} not found in {root}")
        table = pd.read_csv(path)
        missing = {"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS} - set(table.columns)
        if missing:
            raise MedsynthError(f"CheXpert: {name} lacks columns {sorted(missing)}")
        table["_official"] = split
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def build(ctx) -> pd.DataFrame:
    root = ctx.root
    table = read_tables(root)
    patients = table.Path.str.extract(_PATIENT, expand=False)
    if patients.isna().any():
        bad = table.Path[patients.isna()].iloc[0]
        raise MedsynthError(f"CheXpert: no 'patientNNNNN' in Path {bad!r}")
    sources = [resolve(root, p) for p in table.Path]
    check_listed_files("CheXpert", sources, root)
    rules = load_rules(ctx.cfg.get("tabular_rules") or "chexpert")
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", p) for p in table.Path],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", p) for p in patients],
        "source": [str(p.resolve()) for p in sources],
        "view": [view_of(f, a) for f, a in zip(table["Frontal/Lateral"], table["AP/PA"])],
        "findings": "",
        "impression": "",
        "prompt": [row_to_text(r, rules) for r in table.drop(columns=["Path", "_official"]).to_dict("records")],
        "sex": table.Sex.to_numpy(),
        "age": table.Age.to_numpy(),
    })
    # train.csv patients: train/test by hash (val fraction folded into train; valid.csv is the validation set)
    fr = dict(ctx.split_fractions)
    hashed = patient_split(patients, {"train": fr.get("train", 0.8) + fr.get("val", 0.0), "val": 0.0,
                                      "test": fr.get("test", 0.1)}, ctx.key, ctx.name)
    df["split"] = table["_official"].where(table["_official"].notna(), hashed).to_numpy()
    for label in CHEXPERT_LABELS:
        df[label] = table[label].astype(float).to_numpy()
    return df
