"""Contrast-limited adaptive histogram equalisation (OpenCV) on 8- and 16-bit greyscale images.

`clip_limit` has OpenCV's 8-bit meaning: each tile's 256-bin histogram is clipped at clip_limit x (tile pixels /
256) counts. OpenCV's own 16-bit CLAHE builds 65,536-bin histograms, where a typical bin holds under one pixel, so
clipping never bites and the result is near-unlimited equalisation (checked: far stronger than the 8-bit result
for any limit). We therefore define 16-bit CLAHE with 256-bin histograms, as the 8-bit one (skimage does the same
with its nbins): a 16-bit value v lies between 8-bit levels lo = v // 257 and lo + 1; we run 8-bit CLAHE on both
level images and interpolate linearly by the remainder. For v = 257 * k the result is exactly 257 x the 8-bit one.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def _clahe(clip_limit: float, tiles: tuple[int, int]):
    import cv2

    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tiles)


def apply_clahe(img: np.ndarray, clip_limit: float = 2.0, tile_grid=(8, 8)) -> np.ndarray:
    """CLAHE of a 2D uint8 / uint16 image (same dtype back) or a float image in [0, 1] (float32 back, computed on
    16-bit levels). tile_grid is (columns, rows) of tiles, OpenCV's order."""
    if img.ndim != 2:
        raise ValueError(f"CLAHE needs a 2D greyscale image, got shape {img.shape}")
    if clip_limit <= 0:
        raise ValueError(f"clip_limit must be > 0, got {clip_limit}")
    tiles = (int(tile_grid[0]), int(tile_grid[1]))
    if min(tiles) < 1:
        raise ValueError(f"tile_grid must be positive, got {tile_grid}")
    if img.dtype == np.uint8:
        return _clahe(float(clip_limit), tiles).apply(img)
    if img.dtype == np.uint16:
        return _clahe16(img, _clahe(float(clip_limit), tiles))
    if np.issubdtype(img.dtype, np.floating):
        levels = np.rint(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
        return apply_clahe(levels, clip_limit, tiles).astype(np.float32) / np.float32(65535.0)
    raise ValueError(f"CLAHE supports uint8, uint16 or float images, not {img.dtype}")


def _clahe16(img: np.ndarray, clahe) -> np.ndarray:
    lo = (img // 257).astype(np.uint8)
    frac = (img - lo.astype(np.uint16) * 257).astype(np.float32) / np.float32(257.0)
    low = clahe.apply(lo).astype(np.float32)
    if not frac.any():
        return low.astype(np.uint16) * 257
    high = clahe.apply(np.minimum(lo.astype(np.uint16) + 1, 255).astype(np.uint8)).astype(np.float32)
    out = (low + frac * (high - low)) * np.float32(257.0)
    return np.rint(np.clip(out, 0, 65535)).astype(np.uint16)
