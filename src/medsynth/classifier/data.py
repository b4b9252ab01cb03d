"""Images and labels from a processed manifest, for classifier training and scoring."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..manifest import CHEXPERT_LABELS


def label_targets(df: pd.DataFrame, labels: list[str], uncertain: str = "positive") -> np.ndarray:
    """CheXpert values -> binary targets: uncertain (-1) -> positive or negative per policy, missing -> negative
    (chambon2022's convention)."""
    y = df[labels].astype(float).to_numpy(copy=True)
    y[y == -1] = 1.0 if uncertain == "positive" else 0.0
    return np.nan_to_num(y, nan=0.0).astype(np.float32)


def trainable_labels(df: pd.DataFrame, min_positive: int = 2) -> list[str]:
    """Labels with enough positives and negatives in `df` to be learned and scored."""
    present = [c for c in CHEXPERT_LABELS if c in df.columns]
    y = label_targets(df, present) if present else np.zeros((len(df), 0))
    return [c for i, c in enumerate(present) if min_positive <= y[:, i].sum() <= len(df) - min_positive]


def load_gray(path: str | Path, size: int) -> torch.Tensor:
    """A PNG as a [1, size, size] float tensor in [0, 1] (8- or 16-bit)."""
    img = Image.open(path)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    t = torch.from_numpy(arr.astype(np.float32) / scale)[None, None]
    if t.shape[-1] != size or t.shape[-2] != size:
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t[0]


def image_batch(paths: list[str | Path], size: int) -> torch.Tensor:
    return torch.stack([load_gray(p, size) for p in paths])
