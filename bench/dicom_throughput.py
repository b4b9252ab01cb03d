"""DICOM -> PNG throughput: medsynth's `process_image_shard` against a plain pydicom + Pillow loop.

Both sides do the same conversion of the same generated radiographs: modality LUT (rescale), VOI window (pydicom's
apply_voi_lut semantics) or min-max when the file has no window, MONOCHROME1 inversion, 16-bit levels, aspect-
preserving box-filter shrink (cv2 INTER_AREA vs PIL BOX), black padding to a square, 8- or 16-bit PNG. The PNGs
must be pixel-identical (checked; exit status 1 otherwise). CLAHE is off: the reference has no CLAHE of its own.
Both run single-threaded (cv2.setNumThreads(1)); the files are generated first, so both read from the page cache.

    python bench/dicom_throughput.py                 # 200 x 1024 px -> 256 px; bench/out/dicom_throughput.json
    python bench/dicom_throughput.py -n 50 --bit-depth 16
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_dicoms(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    """n single-frame DX/CR files: 16-bit allocated, 12 or 16 bits stored, every 3rd MONOCHROME1, every 2nd with a
    window, every 4th with a rescale, every 5th non-square (size x 7/8 size). Smooth anatomy-like field + noise."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy) - 0.3 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    paths = []
    for i in range(n):
        bits = 16 if i % 2 else 12
        top = 2 ** bits - 1
        field = base + 0.05 * np.roll(base, i * 7, axis=1) + 0.02 * rng.standard_normal(base.shape, dtype=np.float32)
        pixels = np.clip(field * top, 0, top).astype(np.uint16)
        if i % 5 == 4:
            pixels = pixels[:, : size * 7 // 8]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), str(i)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.ViewPosition = ("CR" if i % 2 else "DX"), "PA"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if i % 3 == 0 else "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
        if i % 4 == 1:
            ds.RescaleSlope, ds.RescaleIntercept = 2, -100
        if i % 2 == 0:
            slope, icpt = (2, -100) if "RescaleSlope" in ds else (1, 0)
            ds.WindowCenter, ds.WindowWidth = round(0.55 * top * slope + icpt), round(0.7 * top * slope)
        ds.PixelData = pixels.tobytes()
        path = folder / f"img{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def reference_convert(path: Path, out_path: Path, out_size: int, bit_depth: int) -> None:
    """The plain loop: pydicom per-pixel float64 transforms, PIL BOX resize, numpy padding, PIL PNG writer."""
    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds)
    if "WindowCenter" in ds:
        values = apply_voi_lut(values, ds)
        # apply_windowing's output range: the stored range through the rescale
        lo, hi = (0.0, 2.0 ** ds.BitsStored - 1) if ds.PixelRepresentation == 0 else \
            (-(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1)
        if "RescaleSlope" in ds:
            slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
            lo, hi = lo * slope + intercept, hi * slope + intercept
    else:
        lo, hi = float(values.min()), float(values.max())
    scaled = np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        scaled = 1.0 - scaled
    levels = np.rint(scaled * 65535.0).astype(np.float32)
    h, w = levels.shape
    side = max(h, w)
    th, tw = max(1, round(h * out_size / side)), max(1, round(w * out_size / side))
    small = np.rint(np.asarray(Image.fromarray(levels).resize((tw, th), Image.Resampling.BOX)))
    if bit_depth == 8:
        small, dtype = np.rint(small / 257.0), np.uint8
    else:
        dtype = np.uint16
    canvas = np.zeros((out_size, out_size), dtype=dtype)
    top, left = (out_size - th) // 2, (out_size - tw) // 2
    canvas[top:top + th, left:left + tw] = small.astype(dtype)
    Image.fromarray(canvas).save(out_path, compress_level=3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="number of DICOM files")
    ap.add_argument("--size", type=int, default=1024, help="source side length (pixels)")
    ap.add_argument("--out-size", type=int, default=256)
    ap.add_argument("--bit-depth", type=int, choices=(8, 16), default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "dicom_throughput.json")
    args = ap.parse_args(argv)
    if args.size % args.out_size or (args.size * 7 // 8) % (args.size // args.out_size):
        ap.error("--size must be an integer multiple of --out-size (and of 8) so both box filters see whole boxes")

    import cv2
    import pandas as pd
    import PIL
    import pydicom

    sys.path.insert(0, str(HERE.parent / "src"))
    from medsynth.preprocess.images import process_image_shard

    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="dicom_bench_"))
    try:
        t0 = time.perf_counter()
        (work / "dicom").mkdir()
        paths = make_dicoms(work / "dicom", args.n, args.size, args.seed)
        t_gen = time.perf_counter() - t0
        rows = pd.DataFrame({"id": [p.stem for p in paths], "source": [str(p) for p in paths], "view": ""})
        cfg = {"preprocess": {"image_size": args.out_size, "resize": "pad", "interpolation": "area",
                              "bit_depth": args.bit_depth, "frontal_only": False, "clahe": {"enabled": False}}}

        t0 = time.perf_counter()
        done, rejects = process_image_shard(rows, cfg, work / "ours", work)
        t_ours = time.perf_counter() - t0
        if len(rejects):
            print(rejects.to_string(), file=sys.stderr)
            return 1

        (work / "ref").mkdir()
        t0 = time.perf_counter()
        for p in paths:
            reference_convert(p, work / "ref" / f"{p.stem}.png", args.out_size, args.bit_depth)
        t_ref = time.perf_counter() - t0

        mismatched, max_diff = [], 0
        for p in paths:
            ours = cv2.imread(str(work / "ours" / "images" / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED)
            ref = cv2.imread(str(work / "ref" / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED)
            if ours is None or ref is None or ours.shape != ref.shape or ours.dtype != ref.dtype or (ours != ref).any():
                mismatched.append(p.stem)
                if ours is not None and ref is not None and ours.shape == ref.shape:
                    max_diff = max(max_diff, int(np.abs(ours.astype(np.int64) - ref.astype(np.int64)).max()))
        result = {
            "benchmark": "dicom_throughput",
            "files": args.n, "source_size": args.size, "output_size": args.out_size, "bit_depth": args.bit_depth,
            "source_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 1),
            "generate_s": round(t_gen, 2),
            "medsynth_s": round(t_ours, 3), "reference_s": round(t_ref, 3),
            "medsynth_images_per_s": round(args.n / t_ours, 1), "reference_images_per_s": round(args.n / t_ref, 1),
            "speedup": round(t_ref / t_ours, 2),
            "pixel_identical": not mismatched, "mismatched_files": len(mismatched), "max_abs_diff": max_diff,
            "threads": 1,
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "pydicom": pydicom.__version__,
                         "opencv": cv2.__version__, "pillow": PIL.__version__},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"medsynth  {result['medsynth_images_per_s']:8.1f} images/s")
    print(f"reference {result['reference_images_per_s']:8.1f} images/s (pydicom + Pillow, one file at a time)")
    print(f"speedup   {result['speedup']:8.2f}x   pixel-identical: {result['pixel_identical']}"
          + ("" if not mismatched else f" ({len(mismatched)} files differ, max |diff| {max_diff})"))
    print(f"wrote {args.out}")
    return 0 if not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
