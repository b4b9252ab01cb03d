"""Tiny copies of the real datasets' folder layouts (a few small images, CSVs, XML, NIfTI), built in tmp_path.

Each builder writes the layout the adapter expects on a real download and returns what a test needs to check
(raw ids, expected labels). Contents are synthetic; only the structure mirrors the real releases.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medsynth.manifest import CHEXPERT_LABELS

MIMIC_REPORTS = {
    "50000001": """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities most likely represent nipple shadows.

 IMPRESSION:

 No acute cardiopulmonary process.
""",
    "50000002": """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 FINDINGS AND IMPRESSION:  Moderate right pleural effusion with adjacent atelectasis.
""",
    "50000003": """WET READ: ___ ___ 4:12 PM
  Small left apical pneumothorax.
                                 FINAL REPORT
 CONCLUSION:  Small left apical pneumothorax, new since prior.
""",
    "50000004": "",
}
# subject -> [(study, [(dicom_id, view)])]
MIMIC_LAYOUT = {
    "10000032": [("50000001", [("d-0001", "PA"), ("d-0002", "LATERAL")]), ("50000004", [("d-0007", "AP")])],
    "10000764": [("50000002", [("d-0003", "AP")])],
    "11000123": [("50000003", [("d-0004", "PA"), ("d-0005", "LL"), ("d-0006", "")])],
}
MIMIC_OFFICIAL_SPLIT = {"10000032": "train", "10000764": "validate", "11000123": "test"}


def write_image(path: Path, size=(12, 10), value: int = 100, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))  # deterministic per file name
    arr = np.clip(rng.normal(value, 20, size[::-1]), 0, 255).astype(np.uint8)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def write_dicom(path: Path, rows: int = 8, cols: int = 8) -> Path:
    """A tiny valid DX DICOM (explicit VR little endian, MONOCHROME2) with fake PHI in the header."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-FAKE-0001"
    ds.Modality = "DX"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) * 40).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_mimic(root: Path, fmt: str = "jpg", split_file: bool = True, labels_file: bool = True,
               gz: bool = True, reports_in_subfolder: bool = False) -> Path:
    meta, splits, labels = [], [], []
    for subject, studies in MIMIC_LAYOUT.items():
        for study, images in studies:
            folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
            for dicom_id, view in images:
                if fmt == "jpg":
                    write_image(folder / f"{dicom_id}.jpg")
                else:
                    write_dicom(folder / f"{dicom_id}.dcm")
                meta.append({"dicom_id": dicom_id, "subject_id": subject, "study_id": study, "ViewPosition": view,
                             "Rows": 10, "Columns": 12})
                splits.append({"dicom_id": dicom_id, "study_id": study, "subject_id": subject,
                               "split": MIMIC_OFFICIAL_SPLIT[subject]})
            report_base = root / "mimic-cxr-reports" if reports_in_subfolder else root
            report = report_base / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(MIMIC_REPORTS[study])
            row = {"subject_id": subject, "study_id": study, **{lab: np.nan for lab in CHEXPERT_LABELS}}
            if study == "50000002":
                row.update({"Pleural Effusion": 1.0, "Atelectasis": -1.0})
            if study == "50000001":
                row.update({"No Finding": 1.0})
            labels.append(row)
    suffix = ".csv.gz" if gz else ".csv"
    _write_csv(pd.DataFrame(meta), root / f"mimic-cxr-2.0.0-metadata{suffix}")
    if split_file:
        _write_csv(pd.DataFrame(splits), root / f"mimic-cxr-2.0.0-split{suffix}")
    if labels_file:
        _write_csv(pd.DataFrame(labels), root / f"mimic-cxr-2.0.0-chexpert{suffix}")
    return root


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            df.to_csv(fh, index=False)
    else:
        df.to_csv(path, index=False)


CHEXPERT_ROWS = [
    # (split file, patient, study, view file, sex, age, frontal/lateral, ap/pa, labels)
    ("train", "patient00001", "study1", "view1_frontal.jpg", "Female", 68, "Frontal", "AP",
     {"No Finding": 1.0, "Support Devices": 1.0}),
    ("train", "patient00002", "study1", "view1_frontal.jpg", "Female", 87, "Frontal", "AP",
     {"Cardiomegaly": -1.0, "Lung Opacity": 1.0}),
    ("train", "patient00002", "study2", "view2_lateral.jpg", "Female", 83, "Lateral", None, {"Lung Opacity": 1.0}),
    ("train", "patient00003", "study1", "view1_frontal.jpg", "Male", 0, "Frontal", "PA", {"Pleural Effusion": 0.0}),
    ("valid", "patient64541", "study1", "view1_frontal.jpg", "Male", 73, "Frontal", "AP", {"Edema": 1.0}),
]


def make_chexpert(root: Path, release: str = "CheXpert-v1.0-small") -> Path:
    """root = <parent>/<release> holding train.csv, valid.csv and the train/ valid/ image folders."""
    tables = {"train": [], "valid": []}
    for split, patient, study, view, sex, age, fl, appa, labels in CHEXPERT_ROWS:
        rel = f"{release}/{split}/{patient}/{study}/{view}"
        write_image(root.parent / rel)
        row = {"Path": rel, "Sex": sex, "Age": age, "Frontal/Lateral": fl, "AP/PA": appa}
        row.update({lab: labels.get(lab, np.nan) for lab in CHEXPERT_LABELS})
        tables[split].append(row)
    pd.DataFrame(tables["train"]).to_csv(root / "train.csv", index=False)
    pd.DataFrame(tables["valid"]).to_csv(root / "valid.csv", index=False)
    return root


OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="{uid}"/>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">{indication}</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>
{mesh}
   </MeSH>
{images}
</eCitation>
"""

OPENI_REPORTS = [
    # (report number, uid, findings, impression, major terms, image ids)
    (1, "CXR1", "The heart is normal in size. No pleural effusion.", "Normal chest x-XXXX.", ["normal"],
     ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]),
    (2, "CXR2", "Borderline cardiomegaly. Left basilar opacity.", "Possible left lower lobe pneumonia.",
     ["Cardiomegaly/borderline", "Opacity/lung/base/left"], ["CXR2_IM-0652-1001"]),
    (3, "CXR3", "", "", ["No Indexing"], ["CXR3_IM-1384-1001"]),
    (4, "CXR4", "Lateral view only.", "", ["Calcified Granuloma/lung/upper lobe/right"], []),
]


def openi_xml(uid: str, findings: str, impression: str, major: list[str], images: list[str],
              indication: str = "Cough.") -> str:
    mesh = "\n".join(f"      <major>{t}</major>" for t in major)
    imgs = "\n".join(f'   <parentImage id="{i}"><figureId>F1</figureId></parentImage>' for i in images)
    return OPENI_XML.format(uid=uid, findings=findings, impression=impression, mesh=mesh, images=imgs,
                            indication=indication)


def make_openi(root: Path, skip_image: str | None = None) -> Path:
    for number, uid, findings, impression, major, images in OPENI_REPORTS:
        xml = root / "NLMCXR_reports" / "ecgen-radiology" / f"{number}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(openi_xml(uid, findings, impression, major, images))
        for image_id in images:
            if image_id != skip_image:
                write_image(root / "NLMCXR_png" / f"{image_id}.png")
    return root


COVID_CLASSES = {"COVID": 2, "Normal": 3, "Lung_Opacity": 1, "Viral Pneumonia": 2}


def make_covid(root: Path, drop_mask: str | None = None) -> Path:
    """root/COVID-19_Radiography_Dataset/<class>/{images,masks}/<class>-<n>.png"""
    base = root / "COVID-19_Radiography_Dataset"
    for cls, n in COVID_CLASSES.items():
        for i in range(1, n + 1):
            name = f"{cls}-{i}.png"
            write_image(base / cls / "images" / name)
            if name != drop_mask:
                write_image(base / cls / "masks" / name, value=255)
    (base / "COVID.metadata.xlsx").write_bytes(b"")  # the real release ships these; the adapter ignores them
    return root


AIIB23_CLINICAL = [
    {"Mapping ID": "AIIB23_4.nii.gz", "DIAGNOSIS": "IPF", "label": 1, "AGE": 71, "SEX": "M", "TYPE CTD": "Not Available",
     "SMOKING HISTORY": "Ex", "PACK-YEARS": 99999, "SMOKING HISTORY STOP DATE": -3650, "RISK OCCUPATIONAL": "Yes",
     "RISK ENVIRONMENTAL": "No"},
    {"Mapping ID": "AIIB23_7.nii.gz", "DIAGNOSIS": "CTD-ILD", "label": 0, "AGE": 55, "SEX": "F", "TYPE CTD": "RA",
     "SMOKING HISTORY": "Never", "PACK-YEARS": 0, "SMOKING HISTORY STOP DATE": 0, "RISK OCCUPATIONAL": "No",
     "RISK ENVIRONMENTAL": "Yes"},
    {"Mapping ID": "AIIB23_9.nii.gz", "DIAGNOSIS": "UILD", "label": 1, "AGE": 64, "SEX": "M", "TYPE CTD": None,
     "SMOKING HISTORY": "Current", "PACK-YEARS": 30, "SMOKING HISTORY STOP DATE": None, "RISK OCCUPATIONAL": None,
     "RISK ENVIRONMENTAL": None},
]


def write_nifti(path: Path, shape=(8, 8, 4), labels: bool = False) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    if labels:
        data = np.zeros(shape, np.uint8)
        data[1:4, 2:6, :] = 1
        data[4:7, 2:6, :] = 2
        data[3:5, 3:5, :] = 3
    else:
        data = np.full(shape, -800, np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.7, 0.7, 2.5, 1.0])), str(path))
    return path


def make_aiib23(root: Path, layout: dict | None = None, mask_dir: str = "gtlung", drop_mask: str | None = None,
                clinical: bool = True) -> Path:
    """layout: subfolder -> CT names; default {'train': [4, 7], 'val': [9, 11]} (AIIB23_11 has no clinical row)."""
    layout = layout or {"train": ["AIIB23_4", "AIIB23_7"], "val": ["AIIB23_9", "AIIB23_11"]}
    for sub, names in layout.items():
        for name in names:
            write_nifti(root / sub / "img" / f"{name}.nii.gz")
            if name != drop_mask:
                write_nifti(root / sub / mask_dir / f"{name}.nii.gz", labels=True)
    if clinical:
        pd.DataFrame(AIIB23_CLINICAL).to_csv(root / "data_info.csv", index=False)
    return root
