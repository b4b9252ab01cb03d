"""2D images: load (DICOM / PNG / JPEG, on disk or inside a zip), square them, CLAHE, write PNG shards.

Sources are file paths or 'zip://<zip path>::<member>' (read from the archive, never extracted). The format is
sniffed from the bytes, not the name (the torchxrayvision lung-mask zip holds PNGs named .jpg).

Working representation: 16-bit levels (uint16, 0..65535; DICOM intensities from `read_dicom`'s look-up table,
8-bit files x 257). Resizing in 16 bits keeps precision for 16-bit output and costs half of float32; the final
8-bit conversion is one table look-up. Orientation: bright = attenuating (MONOCHROME1 already inverted).
"""
from __future__ import annotations

import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RejectedInput
from ..io import atomic_path
from ..manifest import REJECT_COLUMNS
from . import dicom
from .clahe import apply_clahe

log = logging.getLogger(__name__)

ZIP_PREFIX = "zip://"
UNREADABLE = "unreadable image"
LATERAL = "lateral view"
MASK_MISMATCH = "mask size mismatch"
PROCESSING_ERROR = "processing error"
LATERAL_VIEWS = {"LATERAL", "LL", "RL", "LAT"}
PNG_COMPRESSION = 3  # zlib level: files ~10% larger than level 9 at a fraction of the time

PREPROCESS_DEFAULTS = {  # mirrors schemas/config.schema.yaml definitions.preprocess (for direct library calls)
    "image_size": 256, "resize": "pad", "interpolation": "bicubic", "bit_depth": 8, "frontal_only": True,
    "clahe": {"enabled": True, "clip_limit": 2.0, "tile_grid": [8, 8]},
}

# 16-bit level -> 8-bit value, rounded (65535 / 257 = 255 exactly).
_TO_8BIT = np.rint(np.arange(65536, dtype=np.float64) / 257.0).astype(np.uint8)


def _interp_flags():
    import cv2

    # nearest: NEAREST_EXACT samples pixel centres like PIL / skimage (plain INTER_NEAREST is shifted by half a pixel)
    return {"nearest": cv2.INTER_NEAREST_EXACT, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


class SourceReader:
    """Reads the bytes of sources, keeping zip archives open across the rows of a shard."""

    def __init__(self):
        self._zips: dict[str, zipfile.ZipFile] = {}

    def read(self, source: str) -> bytes:
        if not source:
            raise RejectedInput(dicom.MISSING, "empty source")
        if source.startswith(ZIP_PREFIX):
            archive, sep, member = source[len(ZIP_PREFIX):].partition("::")
            if not sep or not member:
                raise RejectedInput(UNREADABLE, "zip source must be zip://<archive>::<member>")
            zf = self._zips.get(archive)
            if zf is None:
                try:
                    zf = self._zips[archive] = zipfile.ZipFile(archive)
                except FileNotFoundError:
                    raise RejectedInput(dicom.MISSING, "zip archive does not exist") from None
                except zipfile.BadZipFile as exc:
                    raise RejectedInput(UNREADABLE, f"bad zip archive ({exc})") from None
            try:
                return zf.read(member)
            except KeyError:
                raise RejectedInput(dicom.MISSING, "member not in zip archive") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:  # zlib.error is not an OSError subclass
                raise RejectedInput(dicom.TRUNCATED, f"zip member unreadable ({type(exc).__name__})") from None
        try:
            return Path(source).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise RejectedInput(dicom.MISSING, "source file does not exist") from None
        except IsADirectoryError:
            raise RejectedInput(UNREADABLE, "source is a folder") from None

    def close(self) -> None:
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sniff(data: bytes) -> str:
    if data[128:132] == b"DICM":
        return "dicom"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    return "unknown"


def _decode_raster(data: bytes) -> np.ndarray:
    """PNG / JPEG (or another OpenCV format) -> 2D uint8 / uint16; near-grey colour files are made grey."""
    import cv2

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV raises (not returns None) on some malformed buffers
        raise RejectedInput(UNREADABLE, f"OpenCV could not decode it ({type(exc).__name__})") from None
    if arr is None:
        raise RejectedInput(UNREADABLE, "not a decodable image file")
    if arr.dtype not in (np.uint8, np.uint16):
        raise RejectedInput(dicom.BIT_DEPTH, f"image dtype {arr.dtype}")
    if arr.ndim == 3:
        colour = arr[:, :, :3]
        # Grey radiographs are often stored as RGB (equal channels, or nearly so after JPEG); a real colour
        # image (annotations, photographs) is rejected as in read_dicom.
        spread = int(np.max(colour.max(axis=2).astype(np.int32) - colour.min(axis=2)))
        tolerance = 8 * (257 if arr.dtype == np.uint16 else 1)
        if spread > tolerance:
            raise RejectedInput(dicom.COLOUR, f"{colour.shape[2]} channels differ by up to {spread}")
        arr = colour[:, :, 1] if colour.shape[2] == 3 else colour[:, :, 0]
    if arr.ndim != 2 or arr.size == 0:
        raise RejectedInput(dicom.EMPTY, f"shape {arr.shape}")
    return np.ascontiguousarray(arr)


def load_levels(source, reader: SourceReader | None = None, raw: bool = False) -> tuple[np.ndarray, dict]:
    """Load a source as uint16 intensity levels 0..65535 (raw=False) or as stored integer values (raw=True, for
    label masks: DICOM stored values or PNG values untouched). Returns (array, meta)."""
    source = os.fspath(source)
    own = reader is None
    reader = reader or SourceReader()
    try:
        data = reader.read(source)
    finally:
        if own:
            reader.close()
    if not data:
        raise RejectedInput(dicom.EMPTY_FILE, "0 bytes")
    kind = sniff(data)
    if kind in ("dicom", "unknown"):
        try:
            if raw:
                stored, meta = dicom.read_stored(io.BytesIO(data))
                return stored, {**meta, "format": "dicom"}
            levels, meta = dicom.read_dicom(io.BytesIO(data), dtype=np.uint16)
            meta["format"] = "dicom"
            return levels, meta
        except RejectedInput as exc:
            if kind == "dicom" or exc.reason != dicom.NOT_DICOM:
                raise
        # no DICOM magic and not parseable as DICOM: maybe another raster format OpenCV reads (BMP, TIFF)
    arr = _decode_raster(data)
    meta = {"format": kind if kind != "unknown" else "raster", "Rows": arr.shape[0], "Columns": arr.shape[1],
            "BitsStored": 8 * arr.dtype.itemsize, "view": ""}
    if raw:
        return arr, meta
    return (arr.astype(np.uint16) * 257 if arr.dtype == np.uint8 else arr), meta


def load_image(source, raw: bool = False) -> tuple[np.ndarray, dict]:
    """One image as float32 in [0, 1] (bright = attenuating), or its stored integer values when raw=True.
    `source`: a path or 'zip://<zip path>::<member>'."""
    source = os.fspath(source)
    if not raw and not source.startswith(ZIP_PREFIX) and sniff(_head(source)) == "dicom":
        return dicom.read_dicom(source, dtype=np.float32)  # exact float path, no 16-bit quantisation
    arr, meta = load_levels(source, raw=raw)
    if raw:
        return arr, meta
    return arr.astype(np.float32) / np.float32(65535.0), meta


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except FileNotFoundError:
        raise RejectedInput(dicom.MISSING, "source file does not exist") from None


def to_square(img: np.ndarray, size: int, mode: str = "pad", interpolation: str = "bicubic") -> np.ndarray:
    """Make a 2D image size x size. pad: scale the longer side to `size` (aspect kept) and centre on black;
    crop: centre square of the shorter side; stretch: resize each axis. Resampling uses `interpolation`.

    OpenCV's bilinear/bicubic/lanczos do not low-pass when shrinking (aliasing on a 3000 px radiograph -> 256);
    like PIL's reducing_gap, we first box-average (INTER_AREA) down to at most twice the target, then apply the
    kernel for the last step. Float images are clipped to [0, 1] afterwards (cubic/lanczos overshoot)."""
    content, border = fit(img, size, mode, interpolation)
    return pad(content, border)


def fit(img: np.ndarray, size: int, mode: str = "pad", interpolation: str = "bicubic"):
    """The resampled content of to_square and the (top, bottom, left, right) black border that completes it.
    Kept apart so CLAHE can run on the content only (equalising the black bars would lift them to grey)."""
    if img.ndim != 2:
        raise ValueError(f"to_square needs a 2D image, got shape {img.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    flags = _interp_flags()
    if interpolation not in flags:
        raise ValueError(f"interpolation must be one of {sorted(flags)}, not {interpolation!r}")
    h, w = img.shape
    border = (0, 0, 0, 0)
    if mode == "pad":
        side = max(h, w)
        th, tw = max(1, round(h * size / side)), max(1, round(w * size / side))
        top, left = (size - th) // 2, (size - tw) // 2
        border = (top, size - th - top, left, size - tw - left)
    elif mode == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = img[top:top + side, left:left + side]
        th = tw = size
    elif mode == "stretch":
        th = tw = size
    else:
        raise ValueError(f"resize mode must be pad, crop or stretch, not {mode!r}")
    if img.shape == (th, tw):
        return img, border
    if interpolation in ("bilinear", "bicubic", "lanczos") and (img.shape[0] > 2 * th or img.shape[1] > 2 * tw):
        img = cv2_resize(img, (min(img.shape[1], 2 * tw), min(img.shape[0], 2 * th)), "area")
    out = cv2_resize(img, (tw, th), interpolation)
    if np.issubdtype(out.dtype, np.floating):
        np.clip(out, 0.0, 1.0, out=out)
    return out, border


def cv2_resize(img: np.ndarray, wh: tuple[int, int], interpolation: str) -> np.ndarray:
    import cv2

    return cv2.resize(img, wh, interpolation=_interp_flags()[interpolation])


def pad(img: np.ndarray, border: tuple[int, int, int, int]) -> np.ndarray:
    import cv2

    if not any(border):
        return img
    return cv2.copyMakeBorder(img, *border, cv2.BORDER_CONSTANT, value=0)


def is_lateral(view) -> bool:
    text = str(view or "").strip().upper()
    return text in LATERAL_VIEWS or text.startswith("LAT")


def preprocess_settings(cfg: dict) -> dict:
    """The dataset's preprocess block over the schema defaults (direct calls may pass a partial block)."""
    pp = {**PREPROCESS_DEFAULTS, **(cfg.get("preprocess") or {})}
    pp["clahe"] = {**PREPROCESS_DEFAULTS["clahe"], **(pp.get("clahe") or {})}
    if pp["bit_depth"] not in (8, 16):
        raise ValueError(f"preprocess.bit_depth must be 8 or 16, not {pp['bit_depth']}")
    return pp


def render(levels: np.ndarray, pp: dict, clahe: bool | None = None) -> np.ndarray:
    """16-bit levels -> the output image: resampled, to the output bit depth, CLAHE when enabled (on the image
    content, before the black padding), padded square."""
    out, border = fit(levels, int(pp["image_size"]), pp["resize"], pp["interpolation"])
    if pp["bit_depth"] == 8:
        out = np.take(_TO_8BIT, out, mode="wrap")  # uint16 indices are always in range: skip bounds checks
    use_clahe = pp["clahe"]["enabled"] if clahe is None else clahe
    if use_clahe:
        out = apply_clahe(out, pp["clahe"]["clip_limit"], pp["clahe"]["tile_grid"])
    return pad(out, border)


def write_png(img: np.ndarray, path: Path) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path.name}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _relative(path: Path, results: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(results).resolve())).as_posix()


def _present(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def process_row(row: dict, pp: dict, reader: SourceReader, out_dir: Path, results: Path) -> dict:
    """Convert one manifest row; returns the row with image / mask / view set. Raises RejectedInput."""
    if not _present(row.get("source")):
        raise RejectedInput(dicom.MISSING, "no source in the manifest row")
    row_view = row.get("view") if _present(row.get("view")) else ""
    if pp["frontal_only"] and is_lateral(row_view):
        raise RejectedInput(LATERAL, f"manifest view {row_view}")
    levels, meta = load_levels(str(row["source"]), reader)
    view = row_view or meta.get("view", "")
    if pp["frontal_only"] and is_lateral(view):
        raise RejectedInput(LATERAL, f"DICOM view {view}")
    image = render(levels, pp)
    mask = None
    if _present(row.get("mask_source")):
        try:
            labels, _ = load_levels(str(row["mask_source"]), reader, raw=True)
        except RejectedInput as exc:
            raise RejectedInput(exc.reason, f"mask: {exc.detail}") from None
        if labels.shape != levels.shape:
            raise RejectedInput(MASK_MISMATCH, f"image {levels.shape}, mask {labels.shape}")
        if labels.dtype.kind == "i":
            labels = labels.astype(np.int32)
        mask = to_square(labels, int(pp["image_size"]), pp["resize"], "nearest")
        if mask.min() < 0 or mask.max() > 65535:
            raise RejectedInput(MASK_MISMATCH, "mask labels outside 0..65535")
        mask = mask.astype(np.uint8 if mask.max() <= 255 else np.uint16)
    image_path = out_dir / "images" / f"{row['id']}.png"
    write_png(image, image_path)
    out = dict(row)
    out["image"] = _relative(image_path, results)
    out["mask"] = ""
    if mask is not None:
        mask_path = out_dir / "masks" / f"{row['id']}.png"
        write_png(mask, mask_path)
        out["mask"] = _relative(mask_path, results)
    out["view"] = view
    return out


def process_image_shard(rows: pd.DataFrame, cfg: dict, out_dir: Path,
                        results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Process the rows of one shard: each row is written (images/<id>.png, masks/<id>.png) or rejected.

    Returns (processed rows with `image`, `mask` relative to `results` and `view` filled from DICOM when empty;
    rejects with columns id, source, reason, detail). One bad file never stops the shard."""
    pp = preprocess_settings(cfg)
    out_dir, results = Path(out_dir), Path(results)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    done, rejected = [], []
    with SourceReader() as reader:
        for row in rows.to_dict("records"):
            try:
                done.append(process_row(row, pp, reader, out_dir, results))
            except RejectedInput as exc:
                rejected.append({"id": str(row["id"]), "source": str(row.get("source", "")),
                                 "reason": exc.reason, "detail": exc.detail})
            except Exception as exc:  # a bug or an input no check anticipated: keep the shard going, keep the trace
                log.warning("row %s: unexpected %s", row["id"], type(exc).__name__, exc_info=True)
                rejected.append({"id": str(row["id"]), "source": str(row.get("source", "")),
                                 "reason": PROCESSING_ERROR, "detail": f"{type(exc).__name__}"})
    columns = list(rows.columns) + [c for c in ("view", "image", "mask") if c not in rows.columns]
    processed = pd.DataFrame(done, columns=columns) if done else pd.DataFrame(columns=columns)
    rejects = pd.DataFrame(rejected, columns=REJECT_COLUMNS)
    return processed.astype({c: "object" for c in ("image", "mask", "view") if c in processed}), rejects
