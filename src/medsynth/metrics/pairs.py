"""Full-reference metrics between an image and its reference: RMSE, PSNR, SSIM, MS-SSIM.

Conventions (stated because papers differ):
- Images are grayscale H x W. uint8 inputs are on 0-255; float inputs are read on [0, `data_range`] (default 1).
- RMSE is reported on a 0-255 scale by default (chambon2022 reports RMSE ~31.8 for 8-bit reconstructions).
- PSNR = 20 log10(255 / RMSE_255): data range 255 on the same scale (identical to using range 1 on [0, 1]).
- SSIM: Wang et al. 2004 -- 11x11 Gaussian window (sigma 1.5), population covariances, K1 0.01, K2 0.03, mean over
  the valid region (scikit-image with gaussian_weights=True, use_sample_covariance=False).
- MS-SSIM: Wang et al. 2003 -- 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average-pool
  downsampling, contrast-structure terms at every scale and luminance at the coarsest; negative terms clipped to 0
  (as pytorch-msssim). Needs min(H, W) > 160 for 5 scales; 5 scales use the weights as published (sum 1.0001,
  as pytorch-msssim), fewer scales the first weights renormalised to sum 1.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..errors import MedsynthError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2, _SIGMA, _WIN = 0.01, 0.03, 1.5, 11


def _to_unit(img, data_range: float | None) -> np.ndarray:
    """Image -> float64 on [0, 1]."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MedsynthError(f"expected a grayscale H x W image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    rng = 1.0 if data_range is None else float(data_range)
    out = arr.astype(np.float64) / rng
    if not np.isfinite(out).all() or out.min() < -1e-6 or out.max() > 1 + 1e-6:
        raise MedsynthError(f"float image outside [0, {rng}] (pass data_range=...): [{arr.min():.4g}, {arr.max():.4g}]")
    return out


def _pair(a, b, data_range):
    x, y = _to_unit(a, data_range), _to_unit(b, data_range)
    if x.shape != y.shape:
        raise MedsynthError(f"image and reference differ in size: {x.shape} vs {y.shape}")
    return x, y


def rmse(a, b, data_range: float | None = None, scale: float = 255.0) -> float:
    x, y = _pair(a, b, data_range)
    return float(np.sqrt(np.mean((x - y) ** 2)) * scale)


def psnr(a, b, data_range: float | None = None) -> float:
    """dB, peak = full data range. Identical images -> inf."""
    err = rmse(a, b, data_range, scale=1.0)
    return float("inf") if err == 0 else float(20 * np.log10(1.0 / err))


def ssim(a, b, data_range: float | None = None) -> float:
    from skimage.metrics import structural_similarity

    x, y = _pair(a, b, data_range)
    if min(x.shape) < _WIN:
        raise MedsynthError(f"SSIM needs images of at least {_WIN}x{_WIN}, got {x.shape}")
    return float(structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=_SIGMA,
                                       use_sample_covariance=False, K1=_K1, K2=_K2))


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """Separable 11-tap Gaussian, keeping only fully-covered pixels (a 'valid' convolution)."""
    r = _WIN // 2
    t = np.arange(-r, r + 1)
    g = np.exp(-(t ** 2) / (2 * _SIGMA ** 2))
    g /= g.sum()
    out = ndimage.correlate1d(ndimage.correlate1d(img, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[r:-r, r:-r]


def _ssim_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) at one scale, data range 1."""
    c1, c2 = _K1 ** 2, _K2 ** 2
    mx, my = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mx ** 2
    syy = _filter_valid(y * y) - my ** 2
    sxy = _filter_valid(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _downsample(img: np.ndarray) -> np.ndarray:
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ms_ssim(a, b, data_range: float | None = None, scales: int = 5) -> float:
    x, y = _pair(a, b, data_range)
    if not 1 <= scales <= 5:
        raise MedsynthError(f"MS-SSIM scales must be 1..5, got {scales}")
    need = (_WIN - 1) * 2 ** (scales - 1)
    if min(x.shape) <= need:
        raise MedsynthError(f"MS-SSIM with {scales} scales needs images larger than {need}px, got {x.shape}; "
                            "pass fewer scales")
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    if scales < 5:  # fewer scales: the first weights renormalised; 5 scales: the published weights as they are
        weights /= weights.sum()  # (they sum to 1.0001; pytorch-msssim and Wang et al.'s code do not renormalise)
    values = []
    for level in range(scales):
        s, cs = _ssim_terms(x, y)
        values.append(max(s if level == scales - 1 else cs, 0.0))
        x, y = _downsample(x), _downsample(y)
    return float(np.prod(np.power(values, weights)))


def ms_ssim_diversity(samples: Sequence, data_range: float | None = None, scales: int = 5) -> tuple[float, float, int]:
    """Mean (and std) MS-SSIM over all pairs of samples generated from one prompt; lower = more diverse.
    Returns (mean, std, number of pairs)."""
    if len(samples) < 2:
        raise MedsynthError(f"MS-SSIM diversity needs at least 2 samples, got {len(samples)}")
    vals = [ms_ssim(a, b, data_range, scales) for a, b in combinations(samples, 2)]
    return float(np.mean(vals)), float(np.std(vals)), len(vals)


def summarize(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, population std, n) of per-image values, the 'mean +- std' papers print."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise MedsynthError("no values to summarise")
    return float(arr.mean()), float(arr.std()), int(arr.size)
