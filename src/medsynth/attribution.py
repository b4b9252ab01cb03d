"""Visual attribution (VA) maps: where an image carries its finding.

- `difference_map`: siddiqui2023's generative VA map, the smoothed |counterfactual - original| of an edit: the edit
  is the only thing that differs between the two images (same seed, same model), so what it changed is where the
  target condition lives; with `region` (the paper's masked variant) it is kept inside the organ of interest.
- `gradient_saliency`: the standard baseline (Simonyan et al. 2014): |d logit / d pixel| of a classifier.
Maps are scored against ground-truth lesion masks by `medsynth.metrics.localisation`.
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


def _smooth(arr: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return gaussian_filter(arr, sigma=float(sigma), mode="nearest") if sigma > 0 else arr


def difference_map(original, counterfactual, sigma: float = 1.0, region=None) -> np.ndarray:
    """Gaussian-smoothed |counterfactual - original| (float32, H x W, in the images' intensity units).

    `original`, `counterfactual`: arrays or tensors of the same shape, (H, W) or (C, H, W), on the same intensity
    scale; `sigma`: smoothing in pixels (0 = none); `region`: optional H x W mask (nonzero = organ of interest,
    e.g. the lungs): the smoothed map is zero outside it (siddiqui2023's masked subtraction)."""
    a, b = _as_2d(original, "original"), _as_2d(counterfactual, "counterfactual")
    if a.shape != b.shape:
        raise ValueError(f"original {a.shape} and counterfactual {b.shape} differ in shape")
    out = _smooth(np.abs(b - a), sigma)
    if region is not None:
        keep = _as_2d(region, "region") > 0
        if keep.shape != out.shape:
            raise ValueError(f"region {keep.shape} and images {out.shape} differ in shape")
        out = np.where(keep, out, 0.0).astype(np.float32)
    return out


def gradient_saliency(model, image, target: int | None = None, sigma: float = 1.0) -> np.ndarray:
    """Smoothed |d logit_target / d image| of a classifier (max over channels), H x W float32.

    `model`: a torch module mapping (1, C, H, W) to logits (1, K); `image`: (C, H, W) or (H, W) tensor/array as the
    model takes it; `target`: the logit's index (None: the sum of all logits, "any finding")."""
    import torch

    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {tuple(x.shape)}")
    x = x[None].clone().requires_grad_(True)
    model.eval()
    with torch.enable_grad():
        logits = model(x)
        score = logits.sum() if target is None else logits[0, int(target)]
        (grad,) = torch.autograd.grad(score, x)
    return _smooth(grad[0].abs().amax(dim=0).numpy().astype(np.float32), sigma)
