"""Files of a virtual patient: the radiograph as real DICOM (with FAKE PHI the pipeline must strip), volumes as
NIfTI, 2D masks as PNG. Every byte is a function of the inputs (UIDs from fixed entropy, gzip without mtime), so the
same seed gives byte-identical files.
"""
from __future__ import annotations

import datetime as dt
import gzip
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..io import atomic_path

SOP_CLASS = {"DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
             "CR": "1.2.840.10008.5.1.4.1.1.1"}    # Computed Radiography Image Storage
BITS_STORED = 12
MAX_VALUE = (1 << BITS_STORED) - 1

# Fake identities: plainly synthetic, but shaped like real header content so a PHI scrubber has work to do.
_FAMILY = ["Miller", "Okafor", "Lindqvist", "Nakamura", "Garcia", "Novak", "Haddad", "Kowalski", "Brennan",
           "Santos", "Dubois", "Fischer", "Moreau", "Ivanova", "Patel", "Oyelaran", "Tanaka", "Rossi"]
_GIVEN_F = ["Anna", "Maria", "Grace", "Yuki", "Fatima", "Elena", "Chloe", "Ines", "Priya", "Ada"]
_GIVEN_M = ["John", "Pavel", "Kenji", "Omar", "Lucas", "Tomasz", "Samuel", "Arjun", "Felix", "Ivan"]
_INSTITUTIONS = ["St. Phantom General Hospital", "Riverside Imaging Centre", "Northfield University Hospital",
                 "Lakeshore Community Clinic", "Harbour View Medical Center"]
_PHYSICIANS = ["Hart^Oliver^^Dr", "Mensah^Abena^^Dr", "Young^Li^^Dr", "Weber^Klaus^^Dr", "Costa^Rita^^Dr"]


@dataclass
class FakeIdentity:
    name: str
    mrn: str
    birth_date: str
    institution: str
    accession: str
    referring: str
    study_date: str
    study_time: str


def fake_identity(rng: np.random.Generator, age_years: float, male: bool) -> FakeIdentity:
    study = dt.date(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    birth = study - dt.timedelta(days=int(age_years * 365.25) + int(rng.integers(0, 365)))
    given = rng.choice(_GIVEN_M if male else _GIVEN_F)
    return FakeIdentity(
        name=f"{rng.choice(_FAMILY)}^{given}",
        mrn=f"MRN{int(rng.integers(10**6, 10**7)):07d}",
        birth_date=birth.strftime("%Y%m%d"),
        institution=str(rng.choice(_INSTITUTIONS)),
        accession=f"ACC{int(rng.integers(10**8, 10**9))}",
        referring=str(rng.choice(_PHYSICIANS)),
        study_date=study.strftime("%Y%m%d"),
        study_time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
    )


def to_stored(image01: np.ndarray, monochrome1: bool) -> np.ndarray:
    """0..1 (bright = attenuating) -> 12-bit stored values; MONOCHROME1 stores the inverted values."""
    v = np.rint(np.clip(image01, 0, 1) * MAX_VALUE).astype(np.uint16)
    return (MAX_VALUE - v).astype(np.uint16) if monochrome1 else v


def write_radiograph_dicom(path: Path, image01: np.ndarray, *, modality: str, monochrome1: bool, view: str,
                           pixel_mm: float, who: FakeIdentity, sex: str | None, age_years: int | None,
                           uid_entropy: list[str], acquisition: dict, n_views: int = 1) -> None:
    """One DX/CR image, explicit VR little endian, 16 bits allocated / 12 stored, window and rescale tags."""
    stored = to_stored(image01, monochrome1)
    study_uid = generate_uid(entropy_srcs=uid_entropy + ["study"])
    series_uid = generate_uid(entropy_srcs=uid_entropy + ["series", view])
    sop_uid = generate_uid(entropy_srcs=uid_entropy + ["sop", view])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS[modality]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = who.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = who.study_time
    ds.AccessionNumber = who.accession
    ds.Modality = modality
    ds.Manufacturer = "medsynth phantom"
    ds.InstitutionName = who.institution
    ds.ReferringPhysicianName = who.referring
    ds.StudyDescription = "XR CHEST 1 VIEW" if n_views == 1 else "XR CHEST 2 VIEWS"
    ds.SeriesDescription = f"CHEST {view}"
    ds.PatientName = who.name
    ds.PatientID = who.mrn
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = {"M": "M", "F": "F"}.get(sex or "", "O")
    if age_years is not None:
        ds.PatientAge = f"{int(age_years):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = f"{acquisition['kvp']:.0f}"
    ds.ExposureTime = int(acquisition["exposure_ms"])
    ds.XRayTubeCurrent = int(acquisition["ma"])
    ds.DistanceSourceToDetector = "1800"
    ds.ViewPosition = view
    ds.PatientOrientation = ["L", "F"] if view == "PA" else ["A", "F"]
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = who.accession[-6:]
    ds.SeriesNumber = 1 if view == "PA" else 2
    ds.InstanceNumber = 1
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [f"{pixel_mm:.4f}", f"{pixel_mm:.4f}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.PixelSpacing = [f"{pixel_mm:.4f}", f"{pixel_mm:.4f}"]
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    # The window spans the used range; MONOCHROME1 is displayed inverted, so the same window applies.
    lo, hi = np.percentile(stored, [1, 99])
    ds.WindowCenter = f"{(lo + hi) / 2:.0f}"
    ds.WindowWidth = f"{max(hi - lo, 1):.0f}"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PixelData = stored.astype("<u2").tobytes()
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def nifti_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    # gzip with mtime=0 and no file name: identical bytes for identical data.
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    payload = nifti_bytes(data, affine)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {path.name}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
