"""read_dicom: pydicom's whole test corpus (every file converted or rejected with a named reason), decoding of
compressed syntaxes, VOI / rescale / MONOCHROME1 semantics against pydicom's own functions, view heuristics."""
import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medsynth.embedded import pydicom_test_files
from medsynth.errors import RejectedInput
from medsynth.phi import ALLOWED_META
from medsynth.preprocess import dicom
from medsynth.preprocess.dicom import read_dicom

CORPUS = pydicom_test_files()
DERIVED_META = {"view", "voi", "inverted"}


def make_dicom(pixels, photometric="MONOCHROME2", bits_stored=12, window=None, rescale=None, **tags) -> bytes:
    """A minimal single-frame DX object (explicit VR little endian) with 16-bit unsigned pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["test"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def corpus_files():
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def test_whole_corpus_converted_or_rejected_with_named_reason():
    files = corpus_files()
    assert len(files) > 150  # pydicom 3.0 ships ~176 files (DICOM and not)
    outcome = {}
    for path in files:
        try:
            img, meta = read_dicom(path)
        except RejectedInput as exc:
            assert exc.reason in dicom.REASONS, (path.name, exc.reason)
            assert "\n" not in exc.detail
            outcome[path.relative_to(CORPUS).as_posix()] = exc.reason
            continue
        assert img.dtype == np.float32 and img.ndim == 2, path.name
        assert img.shape == (meta["Rows"], meta["Columns"])
        assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0
        assert set(meta) <= set(ALLOWED_META) | DERIVED_META, set(meta) - set(ALLOWED_META)
        outcome[path.relative_to(CORPUS).as_posix()] = "ok"
    reasons = set(outcome.values())
    assert {"ok", dicom.NOT_DICOM, dicom.NO_PIXELS, dicom.TRUNCATED, dicom.MULTI_FRAME, dicom.COLOUR} <= reasons
    expected = {
        "MR_small_RLE.dcm": "ok",                       # RLE lossless
        "MR_small_jpeg_ls_lossless.dcm": "ok",          # JPEG-LS lossless (pylibjpeg-libjpeg)
        "MR_small_jp2klossless.dcm": "ok",              # JPEG 2000 lossless (pylibjpeg-openjpeg)
        "JPGExtended.dcm": "ok",                        # JPEG extended 12-bit
        "MR_small_bigendian.dcm": "ok",
        "image_dfl.dcm": "ok",                          # deflated explicit VR
        "MR_truncated.dcm": dicom.TRUNCATED,
        "JPEG-lossy.dcm": dicom.DECODE_ERROR,           # known corrupt stream (misplaced marker)
        "rtdose.dcm": dicom.MULTI_FRAME,
        "rtdose_1frame.dcm": dicom.BIT_DEPTH,           # 32-bit dose grid
        "SC_rgb_rle.dcm": dicom.COLOUR,
        "examples_palette.dcm": dicom.COLOUR,
        "rtplan.dcm": dicom.NO_PIXELS,
        "dicomdirtests/DICOMDIR": dicom.NO_PIXELS,
        "README.txt": dicom.NOT_DICOM,
        "zipMR.gz": dicom.NOT_DICOM,
        "test1.json": dicom.NOT_DICOM,
        "badVR.dcm": dicom.BAD_HEADER,
    }
    assert {k: outcome[k] for k in expected} == expected


def test_lossless_syntaxes_decode_to_the_uncompressed_pixels():
    reference, _ = read_dicom(CORPUS / "MR_small.dcm")
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        img, meta = read_dicom(CORPUS / name)
        np.testing.assert_array_equal(img, reference, err_msg=name)
        assert meta["voi"] == "window:LINEAR"


@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm", "693_J2KI.dcm", "examples_overlay.dcm"])
def test_intensities_equal_pydicom_per_pixel_pipeline(name):
    """The look-up table must reproduce pydicom's modality + VOI functions applied to every pixel."""
    ds = pydicom.dcmread(CORPUS / name)
    modality = apply_modality_lut(ds.pixel_array, ds)
    if "WindowCenter" in ds:
        lo, hi = dicom.voi_output_range(ds)
        expected = (apply_voi_lut(modality, ds) - lo) / (hi - lo)
    else:
        expected = (modality - modality.min()) / (modality.max() - modality.min())
    expected = np.clip(expected, 0, 1)
    img, _ = read_dicom(CORPUS / name)
    np.testing.assert_array_equal(img, expected.astype(np.float32))
    levels, _ = read_dicom(CORPUS / name, dtype=np.uint16)
    np.testing.assert_array_equal(levels, np.rint(expected * 65535).astype(np.uint16))


def test_window_rescale_and_monochrome1_inversion():
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    # RescaleIntercept -1000: window 0 +/- 500 in modality units covers stored 500..1500
    mono2, meta2 = read_dicom(make_dicom(stored, window=(0, 1000), rescale=(1, -1000)))
    assert meta2["voi"] == "window:LINEAR" and meta2["inverted"] is False
    flat = mono2.ravel()
    assert flat[stored.ravel() <= 500].max() == 0.0 and flat[stored.ravel() >= 1500].min() == 1.0
    assert np.all(np.diff(flat) >= 0)  # monotone in the stored value
    mono1, meta1 = read_dicom(make_dicom(stored, photometric="MONOCHROME1", window=(0, 1000), rescale=(1, -1000)))
    assert meta1["inverted"] is True
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-7)
    # No window: min-max over the image
    plain, meta = read_dicom(make_dicom(stored))
    assert meta["voi"] == "minmax" and plain.min() == 0.0 and plain.max() == 1.0


def test_invalid_window_falls_back_to_minmax_and_says_so():
    stored = np.arange(256, dtype=np.uint16).reshape(16, 16)
    img, meta = read_dicom(make_dicom(stored, window=(100, 0)))  # width 0 is invalid for LINEAR
    assert meta["voi"].startswith("minmax (invalid VOI ignored")
    assert img.min() == 0.0 and img.max() == 1.0


def test_named_rejections_for_crafted_files():
    stored = np.full((8, 8), 7, dtype=np.uint16)
    with pytest.raises(RejectedInput) as exc:
        read_dicom(make_dicom(stored))
    assert exc.value.reason == dicom.BLANK
    good = make_dicom(np.arange(64, dtype=np.uint16).reshape(8, 8))
    with pytest.raises(RejectedInput) as exc:
        read_dicom(good[:-40])  # pixel data cut short
    assert exc.value.reason == dicom.TRUNCATED
    with pytest.raises(RejectedInput) as exc:
        read_dicom(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert exc.value.reason == dicom.NOT_DICOM
    with pytest.raises(RejectedInput) as exc:
        read_dicom(CORPUS / "does-not-exist.dcm")
    assert exc.value.reason == dicom.MISSING
    ds = pydicom.dcmread(CORPUS / "JPEG2000.dcm")
    # JPEG XL: pydicom 3.0 has no decoder (and will not write the file, so decode the dataset in memory)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.110"
    with pytest.raises(RejectedInput) as exc:
        dicom.decode_pixels(ds)
    assert exc.value.reason == dicom.NO_DECODER
    assert "1.2.840.10008.1.2.4.110" in exc.value.detail


def test_view_heuristics():
    px = np.arange(64, dtype=np.uint16).reshape(8, 8)

    def view(**tags):
        return read_dicom(make_dicom(px, **tags))[1]["view"]

    assert view(ViewPosition="PA") == "PA"
    assert view(ViewPosition="AP AXIAL") == "AP"
    assert view(ViewPosition="LL") == "LL"
    assert view(ViewPosition="LATERAL") == "LATERAL"
    assert view(ViewPosition="LAO") == ""  # oblique: not frontal, not lateral
    item = Dataset()
    item.CodeMeaning = "postero-anterior"
    assert view(ViewCodeSequence=Sequence([item])) == "PA"
    assert view(PatientOrientation=["A", "F"]) == "LATERAL"
    assert view(PatientOrientation=["L", "F"]) == ""
    assert view(SeriesDescription="CHEST PA ERECT") == "PA"
    assert view(SeriesDescription="Chest lateral") == "LATERAL"
    assert view(ImageLaterality="L") == ""  # organ side, not projection
    assert view() == ""


def test_dtype_argument():
    with pytest.raises(ValueError):
        read_dicom(CORPUS / "MR_small.dcm", dtype=np.float64)


def test_unused_high_bits_are_ignored():
    # Old modalities kept overlay planes in the bits above BitsStored; they must not count as intensity.
    stored = np.array([[0xF000 | 291, 5], [4095, 0x8000]], np.uint16)
    img, meta = read_dicom(make_dicom(stored, bits_stored=12))
    assert meta["BitsStored"] == 12
    np.testing.assert_allclose(img, np.array([[291, 5], [4095, 0]]) / 4095.0, rtol=1e-6)


def test_truncated_and_corrupted_bytes_never_escape_as_other_exceptions():
    good = make_dicom(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), window=(100, 200), PatientName="Doe^Jane")
    for cut in range(0, len(good), 29):
        with pytest.raises(RejectedInput) as exc:
            read_dicom(good[:cut])
        assert exc.value.reason in (dicom.TRUNCATED, dicom.NO_PIXELS, dicom.NOT_DICOM, dicom.EMPTY_FILE)
        assert (exc.value.reason == dicom.EMPTY_FILE) == (cut == 0)
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(300):  # flip 3 header bytes: every outcome is an image or a named rejection
        corrupt = bytearray(good)
        for pos in rng.integers(132, len(good) - 64 * 64 * 2, 3):
            corrupt[pos] = rng.integers(0, 256)
        try:
            read_dicom(bytes(corrupt))
            outcomes.add("ok")
        except RejectedInput as exc:
            assert exc.reason in dicom.REASONS
            assert "Doe" not in exc.detail and "Jane" not in exc.detail
            outcomes.add(exc.reason)
    assert "ok" in outcomes and len(outcomes) >= 4
