"""COVID-19 Radiography Database (Kaggle, Chowdhury / Rahman et al.) -> raw manifest.

Layout (root = COVID-19_Radiography_Dataset, or a folder holding it):
  COVID/images/COVID-1.png, COVID/masks/COVID-1.png, Normal/..., Lung_Opacity/..., Viral Pneumonia/...
Prompts are the class labels used by siddiqui2023 ("COVID 19", "Normal chest scan", "Lung Opacity",
"Viral Pneumonia"); `mask_source` is the lung mask of the same name (every image needs one: the VA maps are
masked to the lungs). The database has no patient ids, so each image is its own patient key; all images are
frontal radiographs. Labels in CheXpert space: Normal -> No Finding, Lung_Opacity -> Lung Opacity,
Viral Pneumonia and COVID (COVID-19 pneumonia) -> Pneumonia (and No Finding 0); the class itself is kept in `class_name`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from ..ids import pseudonym
from ..manifest import CHEXPERT_LABELS, patient_split

CLASSES = {  # folder -> (prompt, CheXpert label set to 1)
    "COVID": ("COVID 19", "Pneumonia"),
    "Normal": ("Normal chest scan", "No Finding"),
    "Lung_Opacity": ("Lung Opacity", "Lung Opacity"),
    "Viral Pneumonia": ("Viral Pneumonia", "Pneumonia"),
}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def dataset_dir(root: Path) -> Path:
    """root itself or its single subfolder that holds the class folders."""
    for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        if any((candidate / c / "images").is_dir() for c in CLASSES):
            return candidate
    raise MedsynthError(f"COVID-19 Radiography: no class folders ({', '.join(CLASSES)}) with images/ in {root}")


def build(ctx) -> pd.DataFrame:
    base = dataset_dir(ctx.root)
    records, missing_masks = [], []
    for folder, (prompt, label) in CLASSES.items():
        image_dir = base / folder / "images"
        if not image_dir.is_dir():
            raise MedsynthError(f"COVID-19 Radiography: class folder {folder}/images missing in {base}")
        for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            mask = base / folder / "masks" / image.name
            if not mask.is_file():
                missing_masks.append(mask)
                continue
            records.append((folder, image, mask, prompt, label))
    if missing_masks:
        raise MedsynthError(f"COVID-19 Radiography: {len(missing_masks)} images have no lung mask "
                            f"(e.g. {missing_masks[0].relative_to(base)})")
    if not records:
        raise MedsynthError(f"COVID-19 Radiography: no images in {base}")
    keys = pd.Series([f"{folder}/{image.name}" for folder, image, *_ in records])
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", k) for k in keys],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", k) for k in keys],
        "split": patient_split(keys, ctx.split_fractions, ctx.key, ctx.name).to_numpy(),
        "source": [str(r[1].resolve()) for r in records],
        "mask_source": [str(r[2].resolve()) for r in records],
        "view": "FRONTAL",
        "findings": "",
        "impression": "",
        "prompt": [r[3] for r in records],
        "class_name": [r[0] for r in records],
    })
    for label in CHEXPERT_LABELS:
        df[label] = [1.0 if r[4] == label else float("nan") for r in records]
    df.loc[df["No Finding"].isna(), "No Finding"] = 0.0  # a disease class is not 'no finding'

    return df
