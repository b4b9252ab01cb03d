"""Image quality of a generated sample set (rule `image_quality`): full-reference metrics against the real image of
each prompt's report, no-reference statistics, and MS-SSIM diversity between samples of one prompt.

- paired (where the samples table keeps `source_image`): RMSE (0-255), PSNR, SSIM, MS-SSIM of each generated image
  vs its real image; the real image is resized to the generated size (PIL bicubic) when the sizes differ;
- no-reference: NIQE (official pristine parameters; images need two 96x96 blocks), contrast ratio, sharpness,
  entropy (definitions in metrics.noref);
- diversity: mean pairwise MS-SSIM among the samples of each prompt (lower = more diverse), averaged over prompts.

Each entry: {"mean", "std", "n", "definition"}; a metric that cannot be computed says why instead of a number.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from . import noref, pairs

MS_SSIM_MIN = (pairs._WIN - 1)  # MS-SSIM with s scales needs min(H, W) > 10 * 2^(s-1)


def ms_ssim_scales(size: int) -> int:
    """The most MS-SSIM scales (<= 5) an image of side `size` supports."""
    scales = int(math.floor(math.log2((size - 1) / MS_SSIM_MIN))) + 1 if size > MS_SSIM_MIN else 0
    return max(0, min(5, scales))


def _gray(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            im = Image.fromarray(np.clip(np.round(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8))
        im = im.convert("L")
        if size is not None and im.size != size:
            im = im.resize(size, Image.Resampling.BICUBIC)
        return np.asarray(im)


def _entry(values, definition: str) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    out = {"definition": definition, "n": int(finite.size)}
    if finite.size:
        out.update(mean=float(finite.mean()), std=float(finite.std()))
    else:
        out.update(mean=None, std=None, not_computed="no finite values")
    if finite.size < arr.size:
        out["n_infinite"] = int(arr.size - finite.size)  # PSNR of identical images
    return out


def image_quality(samples: pd.DataFrame, folder: str | os.PathLike, results: str | os.PathLike | None = None,
                  niqe_params: str | os.PathLike | None = None) -> dict:
    if samples.empty:
        raise MedsynthError("no generated images to evaluate")
    gen = [_gray(Path(folder) / f) for f in samples["file"]]
    shapes = {g.shape for g in gen}
    side = min(min(s) for s in shapes)
    out: dict = {"n": len(gen), "image_sizes": sorted(f"{w}x{h}" for h, w in shapes)}

    out["contrast_ratio"] = _entry([noref.contrast_ratio(g) for g in gen],
                                   "(p99 - p1) / (p99 + p1) of 0-255 gray levels")
    out["sharpness"] = _entry([noref.sharpness(g) for g in gen], "variance of the 4-neighbour Laplacian on 0-255")
    out["entropy"] = _entry([noref.entropy(g) for g in gen], "Shannon entropy (bits) of the 256-bin histogram")
    if all(s[0] // noref.NIQE_BLOCK * (s[1] // noref.NIQE_BLOCK) >= 2 for s in shapes):
        out["niqe"] = _entry([noref.niqe(g, params_path=niqe_params) for g in gen],
                             "NIQE (Mittal 2013, official pristine parameters); lower = more natural")
    else:
        out["niqe"] = {"mean": None, "std": None, "n": 0, "not_computed": f"images of {out['image_sizes']} have "
                       f"fewer than two {noref.NIQE_BLOCK}x{noref.NIQE_BLOCK} blocks (NIQE needs at least 192x96)"}

    scales = ms_ssim_scales(side)
    if results is not None and "source_image" in samples.columns:
        real = [_gray(Path(results) / r, (g.shape[1], g.shape[0])) for g, r in zip(gen, samples["source_image"])]
        out["rmse"] = _entry([pairs.rmse(g, r) for g, r in zip(gen, real)], "RMSE on 0-255 vs the real image")
        out["psnr"] = _entry([pairs.psnr(g, r) for g, r in zip(gen, real)], "PSNR (peak 255, dB) vs the real image")
        out["ssim"] = _entry([pairs.ssim(g, r) for g, r in zip(gen, real)],
                             "SSIM (Wang 2004, Gaussian 11x11, sigma 1.5) vs the real image")
        if scales:
            out["ms_ssim"] = _entry([pairs.ms_ssim(g, r, scales=scales) for g, r in zip(gen, real)],
                                    f"MS-SSIM ({scales} scales) vs the real image")
        out["paired_with"] = "the real image of each prompt's report (resized to the generated size, bicubic)"
    if scales and "prompt" in samples.columns:
        per_prompt = []
        for _, idx in samples.groupby("prompt", sort=False).indices.items():
            group = [gen[i] for i in idx]
            if len(group) >= 2 and len({g.shape for g in group}) == 1:
                per_prompt.append(pairs.ms_ssim_diversity(group, scales=scales)[0])
        if per_prompt:
            out["ms_ssim_diversity"] = {**_entry(per_prompt, f"mean pairwise MS-SSIM ({scales} scales) among the "
                                                              "samples of one prompt, averaged over prompts; lower "
                                                              "= more diverse"), "prompts": len(per_prompt)}
    return out
