"""Visual attribution of a counterfactual edit: where the edit changed the image (siddiqui2023's VA map).

The map is the smoothed absolute difference |counterfactual - original|: the edit is the only thing that differs
between the two images (same seed, same model), so what it changed is where the target condition lives.
"""
from __future__ import annotations

import numpy as np


def _as_2d(image, name: str) -> np.ndarray:
    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    if arr.ndim == 3:  # channels-first (C, H, W): a greyscale or RGB image -> mean over the channels
        arr = arr.mean(axis=0)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D image or (C, H, W), got shape {arr.shape}")
    return arr


def difference_map(original, counterfactual, sigma: float = 1.0) -> np.ndarray:
    """Gaussian-smoothed |counterfactual - original| (float32, H x W, in the images' intensity units).

    `original`, `counterfactual`: arrays or tensors of the same shape, (H, W) or (C, H, W), on the same intensity
    scale; `sigma`: smoothing in pixels (0 = none)."""
    from scipy.ndimage import gaussian_filter

    a, b = _as_2d(original, "original"), _as_2d(counterfactual, "counterfactual")
    if a.shape != b.shape:
        raise ValueError(f"original {a.shape} and counterfactual {b.shape} differ in shape")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    diff = np.abs(b - a)
    return gaussian_filter(diff, sigma=float(sigma), mode="nearest") if sigma > 0 else diff
