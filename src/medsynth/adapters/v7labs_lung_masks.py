"""Embedded V7 Labs lung masks (torchxrayvision's semantic_masks_v7labs_lungs.zip) -> image manifest.

What is in the zip (torchxrayvision 1.5.7, checked): 517 single-channel 8-bit images in one folder, all PNG-encoded
whatever their extension (.jpg/.jpeg/.png). They are lung annotations for the COVID-19 Image Data Collection
(ieee8023/covid-chestxray-dataset) by V7 Labs; the radiographs themselves are NOT shipped. Values: 0 background,
255 lungs (torchxrayvision reads lungs as == 255); 51 masks also hold a value 127 that outlines overlays burned
into the source figures (arrowheads, caption/scale bars; the images come from published papers), not anatomy;
82 masks are all zero (no lung drawn). Sizes range from about 156 px to 5,600 px a side.
So each row's image IS a mask: `source` and `mask_source` are both 'zip://<zip>::<member>'. The collection's
patient ids are not shipped either, so each mask is its own patient key (a patient-level split cannot be
guaranteed for images of one patient). No view metadata: `view` is ''.
"""
from __future__ import annotations

import zipfile

import pandas as pd

from .. import embedded
from ..errors import MedsynthError
from ..ids import pseudonym
from ..manifest import patient_split

_SUFFIXES = (".png", ".jpg", ".jpeg")


def build(ctx) -> pd.DataFrame:
    path = embedded.v7labs_lung_masks().resolve()
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(n for n in zf.namelist() if n.lower().endswith(_SUFFIXES))
    except zipfile.BadZipFile as exc:
        raise MedsynthError(f"{path} is not a readable zip ({exc}); reinstall torchxrayvision") from None
    if not members:
        raise MedsynthError(f"{path} holds no mask images")
    keys = pd.Series(members)
    sources = [f"zip://{path}::{m}" for m in members]
    return pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", m) for m in members],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", m) for m in members],
        "split": patient_split(keys, ctx.split_fractions, ctx.key, ctx.name).to_numpy(),
        "source": sources,
        "mask_source": sources,
        "view": "",
        "findings": "",
        "impression": "",
        "prompt": "",
        "lung_value": 255,  # pixel value of lung in these masks; 127 marks a non-lung class
    })
