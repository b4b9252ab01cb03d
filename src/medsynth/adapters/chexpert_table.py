"""Embedded CheXpert table (torchxrayvision's chexpert_train.csv.gz: 223,414 rows of train.csv) -> table manifest.

All rows pass; there are no images (the `source` is the table row: '<csv.gz>::<Path>'). Columns keep CheXpert's
names (Sex, Age, Frontal/Lateral, AP/PA, 14 labels) so the tabular rules ('chexpert') apply to them; the prompt is
filled by the table shard processor from `tabular_rules` (the text conversion is per shard, not here).
The patient is the 'patientNNNNN' part of Path; the split is a keyed hash of the patient.
"""
from __future__ import annotations

import pandas as pd

from .. import embedded
from ..errors import MedsynthError
from ..ids import pseudonym
from ..manifest import CHEXPERT_LABELS, patient_split
from .chexpert import view_of

COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]


def build(ctx) -> pd.DataFrame:
    path = embedded.chexpert_table().resolve()
    table = pd.read_csv(path)
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise MedsynthError(f"{path} lacks columns {sorted(missing)}; reinstall torchxrayvision")
    patients = table.Path.str.extract(r"(patient\d+)", expand=False)
    if patients.isna().any():
        raise MedsynthError(f"{path}: a Path without 'patientNNNNN': {table.Path[patients.isna()].iloc[0]!r}")
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", p) for p in table.Path],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", p) for p in patients],
        "split": patient_split(patients, ctx.split_fractions, ctx.key, ctx.name).to_numpy(),
        "source": [f"{path}::{p}" for p in table.Path],
        "view": [view_of(f, a) for f, a in zip(table["Frontal/Lateral"], table["AP/PA"])],
        "findings": "",
        "impression": "",
        "prompt": "",
    })
    for column in COLUMNS[1:]:
        df[column] = table[column].to_numpy()
    return df
