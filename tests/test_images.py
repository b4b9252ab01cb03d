"""Image loading (DICOM / PNG / JPEG / zip://), squaring, CLAHE and the image shard processor."""
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medsynth import embedded
from medsynth.errors import RejectedInput
from medsynth.preprocess import process_shard
from medsynth.preprocess.clahe import apply_clahe
from medsynth.preprocess.images import load_image, load_levels, to_square


def dicom_bytes(pixels, photometric="MONOCHROME2", view="PA") -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["images"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition = "DX", view
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def gradient(h=60, w=40, top=4095):
    return np.linspace(0, top, h * w).reshape(h, w).astype(np.uint16)


# ---------------------------------------------------------------- to_square

def test_pad_crop_stretch_geometry():
    img = np.ones((100, 50), np.float32)
    padded = to_square(img, 64, "pad", "area")
    assert padded.shape == (64, 64)
    assert padded[:, :12].max() == 0 and padded[:, -12:].max() == 0  # black bars left/right, aspect kept
    assert padded[:, 20:44].min() > 0.9999
    tall = np.zeros((100, 50), np.uint16)
    tall[:25] = 1000  # only the top quarter is bright: a centre crop removes it
    assert to_square(tall, 50, "crop", "nearest").max() == 0
    assert to_square(tall, 50, "crop", "nearest").shape == (50, 50)
    stretched = to_square(tall, 40, "stretch", "nearest")
    assert stretched.shape == (40, 40) and (stretched[:10] == 1000).all() and (stretched[10:] == 0).all()
    assert to_square(np.zeros((30, 30), np.uint8), 30) .shape == (30, 30)
    with pytest.raises(ValueError):
        to_square(img, 64, "fit")
    with pytest.raises(ValueError):
        to_square(img, 64, "pad", "spline")


def test_nearest_keeps_labels_and_shrinking_does_not_alias():
    labels = np.zeros((90, 120), np.uint8)
    labels[20:60, 10:50], labels[30:80, 70:110] = 255, 127
    out = to_square(labels, 32, "pad", "nearest")
    assert set(np.unique(out)) == {0, 127, 255}
    checker = (np.indices((1024, 1024)).sum(axis=0) % 2).astype(np.float32)  # Nyquist pattern
    for interp in ("bilinear", "bicubic", "lanczos", "area"):
        small = to_square(checker, 100, "stretch", interp)  # non-integer factor: aliasing would show as stripes
        assert abs(small.mean() - 0.5) < 0.02 and small.std() < 0.05, interp
        assert small.min() >= 0 and small.max() <= 1


# ---------------------------------------------------------------- CLAHE

def test_clahe_raises_local_contrast_and_agrees_across_bit_depths():
    # Faint texture on a dark and a bright half: a global stretch cannot raise both; CLAHE does, per tile.
    y, x = np.mgrid[0:256, 0:256] / 256.0
    img = np.where(x < 0.5, 0.15, 0.85) + 0.03 * np.sin(40 * x) * np.sin(40 * y)
    u8 = np.rint(img * 255).astype(np.uint8)
    out8 = apply_clahe(u8, 2.0, (8, 8))
    assert out8.dtype == np.uint8 and out8.shape == u8.shape
    for half in (np.s_[32:224, 16:112], np.s_[32:224, 144:240]):
        assert out8[half].std() > 2.5 * u8[half].std()
    # A higher clip limit allows more contrast.
    assert apply_clahe(u8, 4.0)[32:224, 16:112].std() > 1.3 * out8[32:224, 16:112].std()
    u16 = np.rint(img * 65535).astype(np.uint16)
    out16 = apply_clahe(u16, 2.0, (8, 8))
    assert out16.dtype == np.uint16
    assert np.abs(out16 / 257.0 - out8).mean() < 2.0
    np.testing.assert_array_equal(apply_clahe(u8.astype(np.uint16) * 257), out8.astype(np.uint16) * 257)
    as_float = apply_clahe(img.astype(np.float32))
    assert as_float.dtype == np.float32 and 0 <= as_float.min() and as_float.max() <= 1
    with pytest.raises(ValueError):
        apply_clahe(u8, 0)
    with pytest.raises(ValueError):
        apply_clahe(np.zeros((4, 4, 3), np.uint8))


# ---------------------------------------------------------------- loading

def test_zip_sources_read_without_extraction(tmp_path):
    zip_path = embedded.v7labs_lung_masks()
    with zipfile.ZipFile(zip_path) as zf:
        member = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))[0]  # a PNG named .jpg
    source = f"zip://{zip_path}::{member}"
    raw, meta = load_image(source, raw=True)
    assert raw.ndim == 2 and raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 127, 255}
    assert meta["format"] == "png"
    img, _ = load_image(source)
    np.testing.assert_allclose(img, raw / 255.0, atol=1e-6)
    before = set(p.name for p in tmp_path.iterdir())
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/x.dcm", dicom_bytes(gradient()))
        zf.writestr("a/y.png", cv2.imencode(".png", np.full((5, 7), 1000, np.uint16))[1].tobytes())
    dcm, dmeta = load_image(f"zip://{archive}::a/x.dcm")
    assert dcm.shape == (60, 40) and dmeta["view"] == "PA" and dcm.max() == 1.0
    png16, _ = load_levels(f"zip://{archive}::a/y.png")
    assert png16.dtype == np.uint16 and (png16 == 1000).all()
    assert set(p.name for p in tmp_path.iterdir()) == before | {"mixed.zip"}  # nothing extracted
    for bad, reason in ((f"zip://{archive}::a/none.png", "missing file"), (f"zip://{archive}", "unreadable image"),
                        (f"zip://{tmp_path}/no.zip::x.png", "missing file")):
        with pytest.raises(RejectedInput) as exc:
            load_image(bad)
        assert exc.value.reason == reason


def test_png_and_jpeg_colour_handling(tmp_path):
    grey_rgb = np.repeat(np.arange(100, dtype=np.uint8).reshape(10, 10)[:, :, None], 3, axis=2)
    cv2.imwrite(str(tmp_path / "g.jpg"), grey_rgb)
    img, meta = load_image(tmp_path / "g.jpg")
    assert img.shape == (10, 10) and meta["format"] == "jpg"
    colour = grey_rgb.copy()
    colour[..., 2] = 255
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    with pytest.raises(RejectedInput) as exc:
        load_image(str(tmp_path / "c.png"))
    assert exc.value.reason == "colour image"
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(RejectedInput) as exc:
        load_image(str(tmp_path / "junk.png"))
    assert exc.value.reason == "unreadable image"


# ---------------------------------------------------------------- the shard processor

def test_process_image_shard_outputs_rejects_and_accounting(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pa.dcm").write_bytes(dicom_bytes(gradient(80, 60), photometric="MONOCHROME1", view="PA"))
    (src / "lat.dcm").write_bytes(dicom_bytes(gradient(), view="LL"))
    (src / "cut.dcm").write_bytes(dicom_bytes(gradient())[:-100])
    png = np.tile(np.arange(0, 65535, 257, dtype=np.uint16), (40, 1))[:, :200]  # 40 x 200, 16-bit
    cv2.imwrite(str(src / "wide.png"), png)
    mask = np.zeros((40, 200), np.uint8)
    mask[10:30, 50:150] = 255
    cv2.imwrite(str(src / "wide_mask.png"), mask)
    cv2.imwrite(str(src / "small_mask.png"), mask[:20])
    rows = pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "source": [str(src / n) for n in ("pa.dcm", "lat.dcm", "cut.dcm", "wide.png", "wide.png", "gone.dcm")],
        "mask_source": ["", "", "", str(src / "wide_mask.png"), str(src / "small_mask.png"), ""],
        "view": ["", "", "", "PA", "AP", ""],
        "split": "train",
    })
    results = tmp_path / "results"
    out_dir = results / "preprocessed" / "ds" / "shards" / "00000"
    cfg = {"preprocess": {"image_size": 32, "resize": "pad", "interpolation": "area", "bit_depth": 16,
                          "frontal_only": True, "clahe": {"enabled": True, "clip_limit": 2.0, "tile_grid": [4, 4]}}}
    done, rejects = process_shard("image", rows, cfg, out_dir, results)
    assert sorted(done["id"]) == ["a", "d"]
    assert dict(zip(rejects["id"], rejects["reason"])) == {
        "b": "lateral view", "c": "truncated", "e": "mask size mismatch", "f": "missing file"}
    assert list(rejects.columns) == ["id", "source", "reason", "detail"]
    a = done.set_index("id").loc["a"]
    assert a["view"] == "PA" and a["mask"] == "" and a["split"] == "train"
    assert a["image"] == "preprocessed/ds/shards/00000/images/a.png"
    out_a = cv2.imread(str(results / a["image"]), cv2.IMREAD_UNCHANGED)
    assert out_a.shape == (32, 32) and out_a.dtype == np.uint16
    d = done.set_index("id").loc["d"]
    out_mask = cv2.imread(str(results / d["mask"]), cv2.IMREAD_UNCHANGED)
    assert out_mask.shape == (32, 32) and out_mask.dtype == np.uint8 and set(np.unique(out_mask)) == {0, 255}
    out_d = cv2.imread(str(results / d["image"]), cv2.IMREAD_UNCHANGED)
    assert out_d[:8].max() == 0 and out_d[-8:].max() == 0  # wide image padded top and bottom
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert written == ["images/a.png", "images/d.png", "masks/d.png"]  # no temp files, nothing for rejects
    # An empty shard still returns both tables with their columns; a row without a view column gets one.
    empty, none_rejected = process_shard("image", rows.iloc[:0], cfg, out_dir, results)
    assert empty.empty and none_rejected.empty and {"image", "mask", "view"} <= set(empty.columns)
    bare, _ = process_shard("image", rows[["id", "source"]].iloc[:1], cfg, out_dir, results)
    assert bare["view"].tolist() == ["PA"]


def test_monochrome1_is_inverted_and_8bit_output_without_clahe(tmp_path):
    stored = gradient(64, 64)
    for name, photometric in (("m2", "MONOCHROME2"), ("m1", "MONOCHROME1")):
        (tmp_path / f"{name}.dcm").write_bytes(dicom_bytes(stored, photometric=photometric))
    rows = pd.DataFrame({"id": ["m2", "m1"], "source": [str(tmp_path / "m2.dcm"), str(tmp_path / "m1.dcm")],
                         "view": ["", ""]})
    cfg = {"preprocess": {"image_size": 64, "bit_depth": 8, "clahe": {"enabled": False}}}
    done, rejects = process_shard("image", rows, cfg, tmp_path / "out", tmp_path)
    assert rejects.empty and list(done["view"]) == ["PA", "PA"]
    m2 = cv2.imread(str(tmp_path / done["image"][0]), cv2.IMREAD_UNCHANGED)
    m1 = cv2.imread(str(tmp_path / done["image"][1]), cv2.IMREAD_UNCHANGED)
    assert m2.dtype == np.uint8 and m2[0, 0] == 0 and m2[-1, -1] == 255
    np.testing.assert_array_equal(m1.astype(int), 255 - m2.astype(int))


def test_clahe_figure_script(tmp_path):
    import logging
    import runpy
    from types import SimpleNamespace

    from medsynth.io import write_table

    rng = np.random.default_rng(1)
    for i in range(3):
        (tmp_path / f"s{i}.dcm").write_bytes(dicom_bytes(gradient(70, 50) // 4 + rng.integers(0, 30, (70, 50))))
    rows = pd.DataFrame({"id": [f"s{i}" for i in range(3)], "source": [str(tmp_path / f"s{i}.dcm") for i in range(3)],
                         "view": ""})
    dataset = {"adapter": "phantom_cxr", "preprocess": {"image_size": 48, "clahe": {"enabled": True}}}
    results = tmp_path / "results"
    done, _ = process_shard("image", rows, dataset, results / "preprocessed" / "ds" / "shards" / "00000", results)
    write_table(done.drop(columns=["source"]), results / "data" / "ds" / "manifest.parquet")  # shareable: no paths
    write_table(rows, results / "manifests" / "ds.parquet")  # the private id -> source mapping
    figure = results / "figures" / "ds" / "clahe_before_after.png"
    log_path = tmp_path / "clahe.log"
    smk = SimpleNamespace(input=SimpleNamespace(manifest=str(results / "data" / "ds" / "manifest.parquet"),
                                                sources=str(results / "manifests" / "ds.parquet")),
                          output=[str(figure)],
                          log=[str(log_path)], rule="clahe_figure", wildcards=SimpleNamespace(dataset="ds"),
                          params=SimpleNamespace(dataset=dataset, results=str(results)))
    try:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "plot_clahe.py"),
                       init_globals={"snakemake": smk})
    finally:
        for handler in logging.getLogger().handlers[:]:
            handler.close()
            logging.getLogger().removeHandler(handler)
    fig = cv2.imread(str(figure))
    assert fig is not None and fig.shape[0] > 500 and fig.shape[1] > 500
    assert "wrote clahe_before_after.png (3 images)" in log_path.read_text()
