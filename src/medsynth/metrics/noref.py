"""No-reference image quality: NIQE (chen2024) and contrast ratio / sharpness / entropy (choksi2025).

NIQE follows the official MATLAB release (Mittal et al. 2013, niqe_release): 96x96 blocks without overlap, two
scales (the second from MATLAB's bicubic imresize(0.5) with antialiasing), MSCN coefficients with a 7x7 Gaussian
(sigma 7/6, replicate border), 18 AGGD features per block and scale, a multivariate Gaussian fitted to the blocks
(NaN-aware, as nanmean/nancov), and the distance to the pristine model. The pristine parameters are the official
ones: read from a configured .npz/.mat, else from the ``niqe_pris_params.npz`` that the basicsr sdist ships
(Apache-2.0; install with ``pip install --no-deps basicsr==1.4.2``; the package is never imported).

choksi2025 prints "contrast ratio 0.76, sharpness 349.05 (edge definition), entropy 7.94" without definitions; ours:
- contrast ratio: Michelson contrast of the 1st and 99th intensity percentiles, (p99 - p1) / (p99 + p1), on 0-255;
- sharpness: variance of the 3x3 Laplacian ([0 1 0; 1 -4 1; 0 1 0]) of the 0-255 image, reflect-101 borders
  (= cv2.Laplacian(img, CV_64F).var());
- entropy: Shannon entropy in bits of the 256-bin gray-level histogram (at most 8).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import gamma

from ..errors import MedsynthError

NIQE_BLOCK = 96
_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))


def to_gray255(img, data_range: float | None = None) -> np.ndarray:
    """Grayscale H x W (or H x W x 1) image -> float64 on 0-255. uint8 as is; floats on [0, data_range or 1]."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MedsynthError(f"expected a grayscale H x W image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    out = arr.astype(np.float64) * (255.0 / (data_range or 1.0))
    if not np.isfinite(out).all() or out.min() < -1e-6 or out.max() > 255 + 1e-6:
        raise MedsynthError(f"float image outside [0, {data_range or 1}] (pass data_range=...)")
    return out


# -- NIQE ---------------------------------------------------------------------------------------------------------
def _matlab_gaussian(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


@lru_cache(maxsize=4)
def _load_params(path: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if path is None:
        from ..embedded import package_file

        path = str(package_file("basicsr", "metrics/niqe_pris_params.npz"))
    p = Path(path)
    if not p.is_file():
        raise MedsynthError(f"NIQE pristine parameters not found: {p}")
    if p.suffix == ".mat":  # the MATLAB release's modelparameters.mat
        from scipy.io import loadmat

        data = loadmat(p)
        mu, cov, win = data.get("mu_prisparam"), data.get("cov_prisparam"), _matlab_gaussian()
    else:
        with np.load(p, allow_pickle=False) as data:
            mu, cov = data.get("mu_pris_param"), data.get("cov_pris_param")
            win = data["gaussian_window"] if "gaussian_window" in data else _matlab_gaussian()
    if mu is None or cov is None or np.size(mu) != 36 or np.shape(cov) != (36, 36):
        raise MedsynthError(f"{p} does not hold NIQE pristine parameters (36 means, 36x36 covariance)")
    return np.asarray(mu, np.float64).ravel(), np.asarray(cov, np.float64), np.asarray(win, np.float64)


def niqe_params(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, cov, gaussian window) of the pristine model."""
    return _load_params(None if path is None else str(path))


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a ** 3 - 2.5 * a ** 2 + 1) * (a <= 1)
            + (-0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """MATLAB imresize (bicubic, antialiasing, symmetric borders) along one axis as an out x in matrix."""
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])  # MATLAB's symmetric padding
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    mat = np.zeros((n_out, n_in))
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), cols.ravel()), w.ravel())
    return mat


def matlab_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    return _resize_matrix(img.shape[0], scale) @ img @ _resize_matrix(img.shape[1], scale).T


def _aggd(values: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching (alpha, beta_left, beta_right)."""
    v = values.ravel()
    left = np.sqrt(np.mean(v[v < 0] ** 2))
    right = np.sqrt(np.mean(v[v > 0] ** 2))
    gammahat = left / right
    rhat = np.mean(np.abs(v)) ** 2 / np.mean(v ** 2)
    rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return float(alpha), float(left * k), float(right * k)


def _block_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical, two diagonals (circshift as MATLAB)
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (br - bl) * gamma(2 / alpha) / gamma(1 / alpha)
        feats += [alpha, mean, bl, br]
    return feats


def niqe(img, data_range: float | None = None, params_path: str | os.PathLike | None = None) -> float:
    """NIQE of one grayscale image (lower = more natural). Needs at least two 96x96 blocks."""
    mu_p, cov_p, window = niqe_params(params_path)
    x = np.round(to_gray255(img, data_range))  # MATLAB reads 8-bit images; rounding keeps results comparable
    nh, nw = x.shape[0] // NIQE_BLOCK, x.shape[1] // NIQE_BLOCK
    if nh * nw < 2:
        raise MedsynthError(f"NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks, image is {x.shape}")
    x = x[: nh * NIQE_BLOCK, : nw * NIQE_BLOCK]
    per_scale = []
    for scale in (1, 2):
        mu = ndimage.convolve(x, window, mode="nearest")
        sigma = np.sqrt(np.abs(ndimage.convolve(x * x, window, mode="nearest") - mu * mu))
        mscn = (x - mu) / (sigma + 1)
        b = NIQE_BLOCK // scale
        per_scale.append(np.array([_block_features(mscn[i * b:(i + 1) * b, j * b:(j + 1) * b])
                                   for j in range(nw) for i in range(nh)]))
        if scale == 1:
            x = matlab_imresize(x / 255.0, 0.5) * 255.0
    feats = np.concatenate(per_scale, axis=1)
    mu_d = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        raise MedsynthError("NIQE: fewer than two blocks with finite features (flat image?)")
    cov_d = np.cov(complete, rowvar=False)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))


# -- simple no-reference statistics (choksi2025) -----------------------------------------------------------------
def contrast_ratio(img, data_range: float | None = None) -> float:
    lo, hi = np.percentile(to_gray255(img, data_range), [1, 99])
    return 0.0 if hi + lo == 0 else float((hi - lo) / (hi + lo))


def sharpness(img, data_range: float | None = None) -> float:
    x = to_gray255(img, data_range)
    lap = ndimage.convolve(x, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float), mode="mirror")
    return float(lap.var())


def entropy(img, data_range: float | None = None) -> float:
    x = np.clip(np.round(to_gray255(img, data_range)), 0, 255).astype(np.int64)
    p = np.bincount(x.ravel(), minlength=256) / x.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
