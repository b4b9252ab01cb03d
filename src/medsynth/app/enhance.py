"""The app's Enhance page logic: an uploaded radiograph through the workflow's own intensity chain.

DICOM: medsynth.preprocess.dicom (modality LUT -> VOI window -> [0, 1], MONOCHROME1 inverted), optionally with a
window (centre, width) the user gives in place of the file's. PNG / JPEG: the preprocessing's raster decoder.
Then medsynth.preprocess.images.render (square, bit depth, CLAHE on the content) with the chosen settings.
Bad files raise RejectedInput with the workflow's reasons; only allow-listed header fields come back (no PHI).
"""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RejectedInput
from ..preprocess import dicom
from ..preprocess.images import PREPROCESS_DEFAULTS, load_levels, preprocess_settings, render, sniff


@dataclass
class Enhanced:
    before: np.ndarray      # the workflow's output without CLAHE (uint8 / uint16)
    after: np.ndarray       # with the chosen CLAHE
    meta: dict              # allow-listed header fields, format, voi


def decode(data: bytes, window: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
    """Upload bytes -> uint16 levels 0..65535 (bright = attenuating) and allow-listed meta."""
    if not data:
        raise RejectedInput(dicom.EMPTY, "the uploaded file is empty")
    if window is not None and sniff(data) == "dicom":
        return _dicom_with_window(data, window)
    if window is not None:
        raise RejectedInput("window needs DICOM", "a window (centre, width) applies to DICOM modality values only")
    # load_levels reads a source path (the workflow's entry point); a private temporary file holds the upload
    fd, name = tempfile.mkstemp(suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return load_levels(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _dicom_with_window(data: bytes, window: tuple[float, float]) -> tuple[np.ndarray, dict]:
    from ..phi import allowed_meta

    centre, width = float(window[0]), float(window[1])
    if width < 1:
        raise RejectedInput(dicom.BAD_HEADER, f"window width must be >= 1, got {width:g}")
    with dicom.quiet_pydicom():
        try:
            ds = copy.deepcopy(dicom.read_dataset(data))
            stored = dicom.decode_pixels(ds)
            if "VOILUTSequence" in ds:
                del ds.VOILUTSequence  # the user's window replaces the file's VOI
            ds.WindowCenter, ds.WindowWidth = centre, width
            lut, voi = dicom.intensity_lut(ds, stored, np.dtype(np.uint16))
            levels = np.take(lut, dicom._lut_index(stored), mode="wrap")
            meta = allowed_meta(ds)
        except RejectedInput:
            raise
        except Exception as exc:  # as read_dicom: lazily converted corrupt elements
            raise RejectedInput(dicom.BAD_HEADER, f"{type(exc).__name__}") from None
    meta.update(format="dicom", voi=f"user window {centre:g}/{width:g} ({voi})", view=dicom.view_of(ds))
    return levels, meta


def settings(image_size: int = 256, resize: str = "pad", bit_depth: int = 8, clip_limit: float = 2.0,
             tile_grid=(8, 8), clahe: bool = True) -> dict:
    """A preprocess block (schema keys) from the page's widgets, validated as the workflow validates it."""
    return preprocess_settings({"preprocess": {
        "image_size": int(image_size), "resize": resize, "interpolation": PREPROCESS_DEFAULTS["interpolation"],
        "bit_depth": int(bit_depth), "frontal_only": False,
        "clahe": {"enabled": bool(clahe), "clip_limit": float(clip_limit), "tile_grid": [int(t) for t in tile_grid]}}})


def enhance(data: bytes, pp: dict, window: tuple[float, float] | None = None) -> Enhanced:
    levels, meta = decode(data, window)
    return Enhanced(render(levels, pp, clahe=False), render(levels, pp), meta)


def to_display(img: np.ndarray) -> np.ndarray:
    """uint8 for the browser (16-bit outputs are shown at 8 bits; the download keeps the full depth)."""
    return img if img.dtype == np.uint8 else np.rint(img / 257.0).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def config_preprocess(config_files: list[Path]) -> dict[str, dict]:
    """Image datasets' preprocess blocks from the workflow's config files, merged in order as Snakemake merges
    --configfile (later files override earlier ones key by key)."""
    import yaml
    from snakemake.utils import update_config

    merged: dict = {}
    for path in config_files:
        update_config(merged, yaml.safe_load(Path(path).read_text()) or {})
    return {name: preprocess_settings(ds) for name, ds in (merged.get("datasets") or {}).items()
            if isinstance(ds, dict) and isinstance(ds.get("preprocess"), dict)}
