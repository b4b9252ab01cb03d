"""No PHI from DICOM headers reaches outputs, file names or logs: planted identifiers are grepped for everywhere
the preprocessing step writes (images, shard manifest, rejects, log)."""
import io
import logging
import runpy
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from medsynth.io import read_table, write_table
from medsynth.phi import ALLOWED_META, IDENTIFYING_KEYWORDS, allowed_meta, redact
from medsynth.preprocess.dicom import read_dicom

REPO = Path(__file__).resolve().parents[1]
PHI = {
    "PatientName": "Quackenbush^Eudora^Philippa",
    "PatientID": "MRN-7734-QX",
    "PatientBirthDate": "19380214",
    "PatientAddress": "12 Larkspur Lane, Pembleton",
    "InstitutionName": "Saint Wilfrid Infirmary",
    "ReferringPhysicianName": "Zbigniewski^Octavia",
    "OperatorsName": "Ferncastle^Tobias",
    "AccessionNumber": "ACC-5550199",
    "StudyDate": "20240229",
    "StudyTime": "134501",
    "StudyID": "STUDY-4242",
    "StudyDescription": "CHEST PA for Quackenbush",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.7777777777",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.8888888888",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.9999999999",
}
NEEDLES = ["Quackenbush", "Eudora", "Philippa", "MRN-7734-QX", "19380214", "Larkspur", "Wilfrid", "Zbigniewski",
           "Octavia", "Ferncastle", "ACC-5550199", "20240229", "STUDY-4242", "7777777777", "8888888888",
           "9999999999", "1938-02-14", "Gruntwhistle"]


def phi_dicom(pixels: np.ndarray, **extra) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = PHI["SOPInstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality, ds.ViewPosition, ds.PixelSpacing = "CR", "PA", [0.139, 0.139]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    with warnings.catch_warnings():  # pydicom warns when the test plants invalid values on purpose
        warnings.simplefilter("ignore")
        for key, value in {**PHI, **extra}.items():
            setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_allow_list_is_disjoint_and_meta_is_clean():
    assert not set(ALLOWED_META) & IDENTIFYING_KEYWORDS
    from pydicom import dcmread

    data = phi_dicom(np.arange(256, dtype=np.uint16).reshape(16, 16))
    ds = dcmread(io.BytesIO(data))
    meta = allowed_meta(ds)
    assert meta["Modality"] == "CR" and meta["PixelSpacing"] == [0.139, 0.139] and meta["Rows"] == 16
    assert not any(n in repr(meta) for n in NEEDLES)
    _, full = read_dicom(data)
    assert full["view"] == "PA" and not any(n in repr(full) for n in NEEDLES)
    text = f"could not parse {PHI['PatientName']} / Eudora Quackenbush born {PHI['PatientBirthDate']}"
    cleaned = redact(text, ds)
    assert not any(n in cleaned for n in NEEDLES) and cleaned.startswith("could not parse [redacted]")


def test_preprocess_step_writes_no_phi(tmp_path):
    src = tmp_path / "incoming"
    src.mkdir()
    pixels = np.linspace(0, 4095, 96 * 80).reshape(96, 80).astype(np.uint16)
    good = phi_dicom(pixels)
    (src / "good.dcm").write_bytes(good)
    (src / "cut.dcm").write_bytes(good[:-500])                                 # rejected: truncated
    (src / "lat.dcm").write_bytes(phi_dicom(pixels, ViewPosition="LATERAL"))   # rejected: lateral view
    (src / "rgb.dcm").write_bytes(phi_dicom(pixels, PhotometricInterpretation="RGB"))
    # Invalid values: pydicom's validation would warn *and log* them verbatim while reading.
    odd = phi_dicom(pixels, PatientBirthDate="1938-02-14", OtherPatientNames="X" * 70 + "Gruntwhistle")
    (src / "odd.dcm").write_bytes(odd)
    results = tmp_path / "results"
    manifest = results / "manifests" / "ds.parquet"
    rows = pd.DataFrame({"id": ["img0", "img1", "img2", "img3", "img4"], "patient_id": "p0", "split": "train",
                         "source": [str(src / n) for n in ("good.dcm", "cut.dcm", "lat.dcm", "rgb.dcm", "odd.dcm")],
                         "view": "", "findings": "", "impression": "", "prompt": ""})
    write_table(rows, manifest)
    out_dir = results / "preprocessed" / "ds" / "shards" / "00000"
    log_path = results / "logs" / "preprocess_shard" / "ds" / "00000.log"
    log_path.parent.mkdir(parents=True)
    smk = SimpleNamespace(
        input=[str(manifest)], output=[str(out_dir)], log=[str(log_path)], rule="preprocess_shard",
        wildcards=SimpleNamespace(shard="00000", dataset="ds"),
        params=SimpleNamespace(kind="image", results=str(results), dataset={
            "adapter": "mimic_cxr", "shard_size": 10,
            "preprocess": {"image_size": 32, "resize": "pad", "interpolation": "area", "bit_depth": 8,
                           "frontal_only": True, "clahe": {"enabled": True, "clip_limit": 2.0, "tile_grid": [4, 4]}}}),
    )
    logging.captureWarnings(True)  # warnings would reach the log too: include them in what is grepped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            runpy.run_path(str(REPO / "scripts" / "preprocess_shard.py"), init_globals={"snakemake": smk})
    finally:
        logging.captureWarnings(False)
        for handler in logging.getLogger().handlers[:]:
            handler.close()
            logging.getLogger().removeHandler(handler)
    done = read_table(out_dir / "manifest.parquet")
    rejects = read_table(out_dir / "rejects.csv")
    assert list(done["id"]) == ["img0", "img4"] and done["view"][0] == "PA"
    assert dict(zip(rejects["id"], rejects["reason"])) == {
        "img1": "truncated", "img2": "lateral view", "img3": "colour image"}
    assert "rejected" in log_path.read_text()
    written = [p for p in results.rglob("*") if p.is_file() and p != manifest]
    assert {p.name for p in written} >= {"img0.png", "manifest.parquet", "rejects.csv", "00000.log"}
    for path in written:
        blob = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in blob, f"{needle} found in {path.relative_to(results)}"
            assert needle not in str(path.relative_to(results))
