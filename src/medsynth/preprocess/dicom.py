"""DICOM radiograph -> greyscale intensities in [0, 1] (bright = attenuating), with pydicom 3.

Display pipeline (PS3.4 N.2): stored values -> Modality LUT (LUT sequence, or RescaleSlope/Intercept) -> VOI
(first VOI LUT sequence item, else the first WindowCenter/Width with its VOILUTFunction; pydicom's `apply_voi_lut`
semantics, output range as pydicom computes it) -> normalised to [0, 1] -> MONOCHROME1 inverted. Without any VOI
tags the modality values are min-max normalised over the image.

Speed: stored values are 8- or 16-bit integers, so the whole chain is a function of at most 65,536 inputs. We
evaluate it once per image on that domain, with pydicom's own float64 functions, and apply it as one table look-up
(`lut[pixels]`). The result equals the per-pixel pydicom computation exactly, at the cost of one gather.

Decisions (documented because they reject data):
- multi-frame (NumberOfFrames > 1) -> 'multi-frame': a chest radiograph is one frame; choosing a frame silently
  would hide series/cine objects in a dataset of radiographs. NumberOfFrames == 1 is accepted.
- RGB / YBR / PALETTE COLOR -> 'colour image': a colour object in a radiograph dataset is a secondary capture or an
  annotated screenshot; converting it to grey would let burned-in annotations into training data.
- BitsAllocated other than 8/16 (1-bit overlays, 32-bit dose grids) -> 'unsupported bit depth'.
Every failure is a RejectedInput with one of the REASONS below; reason details are redacted of header values.
"""
from __future__ import annotations

import io
import logging
import os
import re
import warnings
from contextlib import contextmanager

import numpy as np

from ..errors import RejectedInput
from ..phi import allowed_meta, redact

NOT_DICOM = "not a DICOM file"
TRUNCATED = "truncated"
NO_PIXELS = "no pixel data"
NO_DECODER = "unsupported transfer syntax (no decoder)"
MULTI_FRAME = "multi-frame"
COLOUR = "colour image"
PHOTOMETRIC = "unsupported photometric"
BIT_DEPTH = "unsupported bit depth"
BAD_HEADER = "invalid image header"
EMPTY = "empty image"
BLANK = "blank image"
DECODE_ERROR = "decode error"
MISSING = "missing file"
EMPTY_FILE = "empty file"   # 0 bytes on disk (an interrupted copy), distinct from a readable but empty image
REASONS = (MISSING, EMPTY_FILE, NOT_DICOM, TRUNCATED, NO_PIXELS, NO_DECODER, MULTI_FRAME, COLOUR, PHOTOMETRIC, BIT_DEPTH,
           BAD_HEADER, EMPTY, BLANK, DECODE_ERROR)

_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "YBR_ICT", "YBR_RCT",
           "PALETTE COLOR"}
_GREY = {"MONOCHROME1", "MONOCHROME2"}
_REQUIRED = ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation")

@contextmanager
def quiet_pydicom():
    """pydicom reports invalid header values both as warnings and on its 'pydicom' logger, quoting the value
    (an over-long PatientName, a malformed birth date): that is PHI on its way to a job log. While we read,
    value validation is off and both channels are silenced; the file's fate is decided by our checks."""
    from pydicom import config

    logger = logging.getLogger("pydicom")
    old_mode, old_disabled = config.settings.reading_validation_mode, logger.disabled
    config.settings.reading_validation_mode = config.IGNORE
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.settings.reading_validation_mode = old_mode
        logger.disabled = old_disabled


def read_dicom(src, dtype=np.float32) -> tuple[np.ndarray, dict]:
    """Decode one single-frame greyscale DICOM.

    Returns (image, meta): image is float32 in [0, 1] (dtype=np.float32) or uint16 levels 0..65535
    (dtype=np.uint16, = rint(value * 65535)); meta holds only allow-listed header fields (medsynth.phi) plus
    'view' ('PA', 'AP', 'LATERAL', 'LL' or ''), 'voi' (how intensities were mapped) and 'inverted'.
    Raises RejectedInput(reason, detail) with reason in REASONS.
    """
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be float32 or uint16, not {np.dtype(dtype)}")
    ds = None
    with quiet_pydicom():
        try:
            ds = read_dataset(src)
            stored = decode_pixels(ds)
            lut, voi = intensity_lut(ds, stored, np.dtype(dtype))
            # np.take with mode='wrap' skips the bounds check of lut[idx] (every index is in range by
            # construction): about 2x faster, and this gather is the only per-pixel work of the intensity chain.
            image = np.take(lut, _lut_index(stored), mode="wrap")
            meta = allowed_meta(ds)
            meta.update(view=view_of(ds), voi=voi, inverted=ds.PhotometricInterpretation == "MONOCHROME1")
        except RejectedInput:
            raise
        except Exception as exc:  # pydicom converts values lazily: a corrupt element fails where it is first read
            raise RejectedInput(BAD_HEADER, _safe(f"{type(exc).__name__}: {exc}", ds)) from None
    return image, meta


def read_stored(src) -> tuple[np.ndarray, dict]:
    """The stored pixel values untouched (label masks stored as DICOM) and the view. Same checks and reasons."""
    ds = None
    with quiet_pydicom():
        try:
            ds = read_dataset(src)
            return decode_pixels(ds), {"view": view_of(ds)}
        except RejectedInput:
            raise
        except Exception as exc:  # as in read_dicom: lazily converted corrupt elements
            raise RejectedInput(BAD_HEADER, _safe(f"{type(exc).__name__}: {exc}", ds)) from None


def _size_of(src) -> int | None:
    """Byte size of a path or a seekable buffer (None when it cannot be told without reading)."""
    if isinstance(src, (str, os.PathLike)):
        try:
            return os.path.getsize(src)
        except OSError:
            return None  # missing: reported by the read below
    if hasattr(src, "getbuffer"):
        return src.getbuffer().nbytes
    return None


def read_dataset(src):
    """Parse the header (pixels stay undecoded). Files without the 'DICM' preamble are accepted only when they
    parse as a dataset that starts at group 0008 (old ACR-NEMA style exports); anything else is 'not a DICOM file'."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    if _size_of(src) == 0:
        raise RejectedInput(EMPTY_FILE, "0 bytes")
    with quiet_pydicom():
        try:
            try:
                ds = pydicom.dcmread(src)
            except InvalidDicomError:
                if hasattr(src, "seek"):
                    src.seek(0)
                ds = pydicom.dcmread(src, force=True)
                keys = list(ds.keys())
                if not keys or keys[0].group != 0x0008:
                    raise RejectedInput(NOT_DICOM, "no DICOM preamble and no parseable dataset") from None
        except RejectedInput:
            raise
        except FileNotFoundError:
            raise RejectedInput(MISSING, "source file does not exist") from None
        except (EOFError, OSError) as exc:
            raise RejectedInput(TRUNCATED, f"header ends early ({type(exc).__name__})") from None
        except Exception as exc:  # any parser failure means this is not a readable DICOM file
            raise RejectedInput(NOT_DICOM, f"header unreadable ({type(exc).__name__})") from None
    return ds


def decode_pixels(ds) -> np.ndarray:
    """Check the image module and decode the stored values of a single-frame greyscale image (native byte order)."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise RejectedInput(BIT_DEPTH, "float pixel data")
        raise RejectedInput(NO_PIXELS, f"SOP class {_sop_class(ds)}")
    with quiet_pydicom():
        try:
            missing = [k for k in _REQUIRED if k not in ds or ds[k].value in (None, "")]
            if missing:
                raise RejectedInput(BAD_HEADER, f"missing {', '.join(missing)}")
            rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            photometric = str(ds.PhotometricInterpretation).strip().upper()
        except RejectedInput:
            raise
        except Exception as exc:  # e.g. Rows = '1A' (invalid IS)
            raise RejectedInput(BAD_HEADER, _safe(f"{type(exc).__name__}: {exc}", ds)) from None
    if frames > 1:
        raise RejectedInput(MULTI_FRAME, f"{frames} frames")
    if photometric in _COLOUR or samples != 1:
        raise RejectedInput(COLOUR, f"{_code(photometric)}, {samples} samples per pixel")
    if photometric not in _GREY:
        raise RejectedInput(PHOTOMETRIC, _code(photometric))
    if bits not in (8, 16):
        raise RejectedInput(BIT_DEPTH, f"BitsAllocated {bits}")
    if rows < 1 or cols < 1:
        raise RejectedInput(EMPTY, f"{rows}x{cols}")
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is None or "TransferSyntaxUID" not in file_meta:
        raise RejectedInput(BAD_HEADER, "no Transfer Syntax UID")
    with quiet_pydicom():
        try:
            arr = ds.pixel_array
        except NotImplementedError as exc:  # pydicom: no installed plugin handles this transfer syntax
            raise RejectedInput(NO_DECODER, _uid(file_meta.TransferSyntaxUID)) from exc
        except ValueError as exc:
            text = str(exc)
            if re.search(r"less than expected|truncat|not enough|premature|too short", text, re.I):
                raise RejectedInput(TRUNCATED, _safe(text.split(" - ")[0], ds)) from None
            raise RejectedInput(DECODE_ERROR, _safe(f"{type(exc).__name__}: {text}", ds)) from None
        except Exception as exc:  # decoder plugins raise their own types for corrupt streams
            raise RejectedInput(DECODE_ERROR, _safe(f"{type(exc).__name__}: {exc}", ds)) from None
    if arr.ndim != 2 or arr.shape != (rows, cols):
        raise RejectedInput(BAD_HEADER, f"decoded shape {arr.shape} != {rows}x{cols}")
    if arr.dtype.itemsize not in (1, 2) or arr.dtype.kind not in "ui":
        raise RejectedInput(BIT_DEPTH, f"decoded dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


# Reject details end up in tables and logs. In a corrupt file one "value" can swallow the rest of the header
# (names included), so details never echo header text: only validated UIDs, short codes and numbers survive.
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_CODE = re.compile(r"^[A-Z0-9_ ]{1,16}$")


def _uid(value) -> str:
    name = getattr(value, "name", "")
    text = str(value or "").strip()
    if not _UID.match(text):
        return "invalid UID"
    return f"{name} ({text})" if name and name != text else text


def _code(value) -> str:
    text = str(value or "").strip()
    return text if _CODE.match(text) else "invalid value"


def _safe(text: str, ds=None, limit: int = 200) -> str:
    """Exception text made safe for a rejects table: identifying values redacted, quoted values dropped unless
    they are numbers/UIDs, non-printable characters removed, one line."""
    text = redact(text, ds)
    text = re.sub(r"'([^']*)'|\"([^\"]*)\"",
                  lambda m: m.group(0) if _UID.match(m.group(1) or m.group(2) or "") else "'...'", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]


def _lut_index(stored: np.ndarray) -> np.ndarray:
    """The stored values reinterpreted as unsigned table indices (a view: no copy)."""
    return stored.view(np.uint8 if stored.dtype.itemsize == 1 else np.uint16)


def _domain(stored: np.ndarray) -> np.ndarray:
    """Every value the stored dtype can hold, ordered by its unsigned index."""
    n = 256 if stored.dtype.itemsize == 1 else 65536
    return np.arange(n, dtype=np.uint8 if n == 256 else np.uint16).view(stored.dtype)


def voi_output_range(ds) -> tuple[float, float]:
    """Output range of pydicom's apply_voi_lut for this dataset: LUT entries for a VOI LUT sequence, else the
    range apply_windowing maps onto (stored range through the rescale)."""
    if ds.get("VOILUTSequence"):
        return 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 0:
        lo, hi = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        lo, hi = float(-(2 ** (int(ds.BitsStored) - 1))), float(2 ** (int(ds.BitsStored) - 1) - 1)
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return lo, hi


def intensity_lut(ds, stored: np.ndarray, dtype=np.dtype(np.float32)) -> tuple[np.ndarray, str]:
    """Table from stored value (unsigned index) to output intensity, and a label of the VOI used."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with quiet_pydicom():
        try:
            modality = apply_modality_lut(_domain(stored), ds)
        except Exception as exc:
            detail = _safe(f"modality LUT: {type(exc).__name__}: {exc}", ds)
            raise RejectedInput(BAD_HEADER, detail) from None
        has_voi = bool(ds.get("VOILUTSequence")) or ("WindowCenter" in ds and "WindowWidth" in ds)
        voi = "none"
        if has_voi:
            try:
                values = apply_voi_lut(modality, ds, index=0, prefer_lut=True)
                lo, hi = voi_output_range(ds)
                voi = "voi_lut" if ds.get("VOILUTSequence") else f"window:{getattr(ds, 'VOILUTFunction', 'LINEAR')}"
            except Exception as exc:  # e.g. WindowWidth 0: ignore the broken window, say so in meta['voi']
                voi = f"minmax (invalid VOI ignored: {type(exc).__name__})"
        if voi.startswith("minmax") or voi == "none":
            values = modality
            if stored.dtype.kind == "u":
                imin, imax = int(stored.min()), int(stored.max())
            else:  # signed: the extremes of the stored values, as unsigned table indices
                imin, imax = (int(np.asarray(v, stored.dtype).view(_lut_index(stored).dtype))
                              for v in (stored.min(), stored.max()))
            ends = modality[[imin, imax]].astype(np.float64)
            lo, hi = float(ends.min()), float(ends.max())
            if voi == "none":
                voi = "minmax"
            if hi == lo:
                raise RejectedInput(BLANK, "all pixels have one value and there is no window")
    scaled = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    scaled = np.clip(scaled, 0.0, 1.0)
    if str(ds.PhotometricInterpretation).strip().upper() == "MONOCHROME1":
        scaled = 1.0 - scaled  # MONOCHROME1: high values display dark; we store bright = attenuating
    if dtype == np.uint16:
        return np.rint(scaled * 65535.0).astype(np.uint16), voi
    return scaled.astype(np.float32), voi


def _sop_class(ds) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return _uid(uid) if uid else "unknown"


_CODE_VIEWS = [(r"postero.?anterior", "PA"), (r"antero.?posterior", "AP"), (r"left lateral", "LL"),
               (r"lateral", "LATERAL")]
_TEXT_VIEWS = [(r"\bPA\b|POSTERO.?ANTERIOR", "PA"), (r"\bAP\b|ANTERO.?POSTERIOR", "AP"),
               (r"\bLL\b|LEFT LAT", "LL"), (r"\bLAT(ERAL)?\b|\bRL\b", "LATERAL")]


def view_of(ds) -> str:
    """'PA', 'AP', 'LATERAL', 'LL' or '' from, in order: ViewPosition, ViewCodeSequence, PatientOrientation (rows
    running anterior/posterior = a lateral projection), and Series/Protocol description keywords.

    ImageLaterality is not used: it names the side of a paired organ (L/R/B), not the projection, so reading 'L'
    as 'lateral' would be wrong. Obliques and unknown codes give ''."""
    with quiet_pydicom():
        try:
            pos = str(ds.get("ViewPosition", "") or "").strip().upper()
            if pos:
                first = pos.split()[0]
                if first in ("PA", "AP", "LL"):
                    return first
                if "LAT" in pos or first == "RL":
                    return "LATERAL"
            for item in ds.get("ViewCodeSequence", None) or []:
                meaning = str(item.get("CodeMeaning", "")).lower()
                for pattern, view in _CODE_VIEWS:
                    if re.search(pattern, meaning):
                        return view
            orient = ds.get("PatientOrientation", None)
            if orient is not None and not isinstance(orient, str) and len(orient) == 2:
                if str(orient[0])[:1].upper() in ("A", "P"):
                    return "LATERAL"
            for key in ("SeriesDescription", "ProtocolName"):
                text = str(ds.get(key, "") or "").upper()
                for pattern, view in _TEXT_VIEWS:
                    if re.search(pattern, text):
                        return view
        except Exception:  # a malformed optional tag only costs us the view, which then stays unknown ('')
            return ""
    return ""
