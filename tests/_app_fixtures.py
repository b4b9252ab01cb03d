"""A tiny results folder as the workflow writes it, for the app tests: a trained (tiny) ldm2d pipeline, a model whose
diffusion stage has not run, a processed dataset with rejects, a measured report cell, a sample set and logged
losses. Built in the test, on CPU, in about a second."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from _engine_fixtures import ddpm, tiny_images, tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae
from medsynth.io import write_json
from medsynth.models.autoencoder import set_scaling_factor
from medsynth.pipeline_io import save_pipeline
from medsynth.report.cells import make_cell
from medsynth.sampling import make_scheduler

MODEL = "tiny"
PHI_NAME = "Doe^Jane"


def tiny_components():
    tok = tiny_tokenizer()
    te = tiny_text_encoder(tok).eval()
    vae = tiny_vae().eval()
    set_scaling_factor(vae, 0.9)
    return dict(vae=vae, unet=tiny_unet(cross_dim=te.output_dim).eval(), text_encoder=te, tokenizer=tok,
                scheduler=make_scheduler("ddim", ddpm().config))


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def radiograph(size=48, seed=0) -> np.ndarray:
    """A smooth greyscale 'radiograph' (uint8) with some structure for CLAHE to act on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.35 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.05 * rng.standard_normal((size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def dicom_bytes(pixels: np.ndarray, window=(2048, 4096), photometric="MONOCHROME2") -> bytes:
    """A single-frame DX DICOM with a patient name in its header (which must never reach the app's output)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["app-test"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID, ds.ViewPosition = "DX", PHI_NAME, "MRN-12345", "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_results(root: Path) -> Path:
    results = Path(root)
    comp = tiny_components()
    save_pipeline(results / "models" / MODEL / "pipeline", **comp)
    write_json({"stage": "vae", "steps": 6, "resumed_from": None, "train_loss": [0.9, 0.7, 0.6, 0.5, 0.45, 0.4],
                "val_loss": [[3, 0.65], [6, 0.42]]}, results / "models" / MODEL / "vae_train.json")
    write_json({"stage": "diffusion", "steps": 4, "resumed_from": None, "train_loss": [1.0, 0.8, 0.7, 0.6],
                "val_loss": [[4, 0.66]]}, results / "models" / MODEL / "diffusion_train.json")
    (results / "models" / "halfway" / "vae").mkdir(parents=True)
    (results / "models" / "halfway" / "vae" / "config.json").write_text("{}")
    # a processed dataset: 6 images, 2 rejects
    images = tiny_images(6).get(range(6))
    rows = []
    for i in range(6):
        rel = f"preprocessed/phantom_cxr/shards/00000/img{i}.png"
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((images[i, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(results / rel)
        effusion = float(i % 2)
        rows.append({"id": f"p{i:02d}", "patient_id": f"pt{i // 2}", "split": ["train", "val", "test"][i % 3],
                     "image": rel, "view": "PA" if i < 5 else "AP",
                     "findings": "Blunted left costophrenic angle." if effusion else "Lungs are clear.",
                     "impression": "Left pleural effusion." if effusion else "No acute process.",
                     "prompt": "Left pleural effusion." if effusion else "No acute process.",
                     "Pleural Effusion": effusion, "Cardiomegaly": 1.0 if i == 4 else 0.0})
    (results / "data" / "phantom_cxr").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(results / "data" / "phantom_cxr" / "manifest.parquet")
    pd.DataFrame([{"id": "r1", "source": "x.dcm", "reason": "truncated", "detail": "header ends early"},
                  {"id": "r2", "source": "y.dcm", "reason": "lateral view", "detail": "DICOM view LL"}]
                 ).to_csv(results / "data" / "phantom_cxr" / "rejects.csv", index=False)
    # a measured report cell (choksi2025 quality table) and a sample set
    cell = make_cell("choksi2025", "quality", "Ours (phantom, CI)", "SSIM", 0.5123,
                     provenance={"dataset": "phantom_cxr", "n": 6, "method": "skimage SSIM", "split": "test",
                                 "scale": "ci", "seed": 0}, reproduces="Published model")
    (results / "eval" / "choksi2025").mkdir(parents=True)
    (results / "eval" / "choksi2025" / "quality_cells.json").write_text(json.dumps([cell]))
    sample_dir = results / "samples" / MODEL / "examples"
    sample_dir.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(((images[i, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(sample_dir / f"{i:05d}.png")
    pd.DataFrame({"file": [f"{i:05d}.png" for i in range(3)],
                  "prompt": ["Small left pleural effusion.", "Small left pleural effusion.", "Cardiomegaly."],
                  "seed": [0, 1, 0]}).to_csv(sample_dir / "samples.csv", index=False)
    fig_dir = results / "figures" / "choksi2025"
    fig_dir.mkdir(parents=True)
    Image.fromarray(radiograph(32)).save(fig_dir / "grid.png")
    return results
