"""Localisation scores of a visual-attribution map against a ground-truth lesion mask.

- NCC: normalised cross-correlation of map and mask (the VA-GAN protocol, Baumgartner et al. 2018): the Pearson
  correlation over pixels, in [-1, 1]; 0 = no relation.
- pixel AUROC: the probability that a random lesion pixel scores higher in the map than a random non-lesion pixel
  (ties count half); 0.5 = chance.
Both are undefined (None) where the mask or the map is constant: a mask with no lesion pixel, or a map that is flat.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _pair(va_map, mask) -> tuple[np.ndarray, np.ndarray]:
    m, g = np.asarray(va_map, dtype=np.float64), np.asarray(mask) > 0
    if m.shape != g.shape:
        raise ValueError(f"map {m.shape} and mask {g.shape} differ in shape")
    return m.ravel(), g.ravel()


def ncc(va_map, mask) -> float | None:
    m, g = _pair(va_map, mask)
    g = g.astype(np.float64)
    sm, sg = m.std(), g.std()
    if sm == 0 or sg == 0:
        return None
    return float(((m - m.mean()) * (g - g.mean())).mean() / (sm * sg))


def pixel_auroc(va_map, mask) -> float | None:
    from scipy.stats import rankdata

    m, g = _pair(va_map, mask)
    n_pos, n_neg = int(g.sum()), int((~g).sum())
    if n_pos == 0 or n_neg == 0 or m.min() == m.max():
        return None
    ranks = rankdata(m)  # average ranks: ties count half (Mann-Whitney U)
    return float((ranks[g].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mean_se(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, standard error (sample std / sqrt(n)) and n of the defined values."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return None, None, 0
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
    return float(v.mean()), se, len(v)
