"""MIMIC-CXR / MIMIC-CXR-JPG (PhysioNet) -> raw manifest.

Layout (root = the dataset folder):
  mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, subject_id, study_id, ViewPosition, ...
  mimic-cxr-2.0.0-chexpert.csv[.gz]   subject_id, study_id, 14 CheXpert labels (optional)
  mimic-cxr-2.0.0-split.csv[.gz]      dicom_id, study_id, subject_id, split (train / validate / test) (optional)
  files/p10/p10000032/s50414267/<dicom_id>.dcm | .jpg
  files/p10/p10000032/s50414267.txt   free-text report (from mimic-cxr-reports; also looked for under
                                      mimic-cxr-reports/files/)
The official split is used where present, else a keyed hash of the patient. An image listed in the metadata but
absent is kept and becomes a 'missing file' reject in preprocessing (none present at all: one error). Every
report must exist: a partial download fails with the count and an example instead of shrinking silently.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from . import check_listed_files
from ..ids import pseudonym
from ..labels import normalize_view
from ..manifest import CHEXPERT_LABELS, patient_split
from ..reports import make_prompt, parse_mimic_report

PREFIX = "mimic-cxr-2.0.0"
_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def find_table(root: Path, stem: str, required: bool = True) -> Path | None:
    for suffix in (".csv.gz", ".csv"):
        path = root / f"{PREFIX}-{stem}{suffix}"
        if path.is_file():
            return path
    if required:
        raise MedsynthError(f"MIMIC-CXR: {PREFIX}-{stem}.csv(.gz) not found in {root}")
    return None


def _image_path(root: Path, subject: str, study: str, dicom_id: str, fmt: str) -> Path:
    folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
    if fmt in ("jpg", "dicom"):
        return folder / f"{dicom_id}.{'jpg' if fmt == 'jpg' else 'dcm'}"
    jpg = folder / f"{dicom_id}.jpg"
    return jpg if jpg.is_file() else folder / f"{dicom_id}.dcm"


def _report_path(root: Path, subject: str, study: str) -> Path:
    rel = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
    for base in (root, root / "mimic-cxr-reports"):
        if (base / rel).is_file():
            return base / rel
    return root / rel


def _missing_error(what: str, paths: list[Path], total: int, root: Path) -> MedsynthError:
    example = paths[0].relative_to(root) if paths[0].is_relative_to(root) else paths[0]
    return MedsynthError(f"MIMIC-CXR: {len(paths)} of {total} {what} listed in the metadata are missing "
                         f"(e.g. {example}); is the download complete?")


def build(ctx) -> pd.DataFrame:
    root = ctx.root
    fmt = ctx.cfg.get("image_format", "auto")
    if fmt == "png":
        raise MedsynthError(f"datasets.{ctx.name}.image_format: MIMIC-CXR ships DICOM or JPG, not PNG")
    meta = pd.read_csv(find_table(root, "metadata"), dtype={"dicom_id": str, "subject_id": str, "study_id": str})
    need = {"dicom_id", "subject_id", "study_id", "ViewPosition"}
    if need - set(meta.columns):
        raise MedsynthError(f"MIMIC-CXR metadata lacks columns {sorted(need - set(meta.columns))}")

    sources = [_image_path(root, s, t, d, fmt) for s, t, d in zip(meta.subject_id, meta.study_id, meta.dicom_id)]
    check_listed_files("MIMIC-CXR", sources, root)

    studies = meta[["subject_id", "study_id"]].drop_duplicates()
    report_files = {st: _report_path(root, su, st) for su, st in zip(studies.subject_id, studies.study_id)}
    missing = [p for p in report_files.values() if not p.is_file()]
    if missing:
        raise _missing_error("reports", missing, len(report_files), root)
    parsed = {st: parse_mimic_report(p.read_text(errors="replace")) for st, p in report_files.items()}

    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", d) for d in meta.dicom_id],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", s) for s in meta.subject_id],
        "study_id": [pseudonym(ctx.key, f"{ctx.name}/study", s) for s in meta.study_id],
        "source": [str(p.resolve()) for p in sources],
        "view": [normalize_view(v) for v in meta.ViewPosition],
        "findings": [parsed[s].findings for s in meta.study_id],
        "impression": [parsed[s].impression for s in meta.study_id],
        "indication": [parsed[s].indication for s in meta.study_id],
    })
    df["prompt"] = [make_prompt(f, i) for f, i in zip(df.findings, df.impression)]

    split_file = find_table(root, "split", required=False)
    if split_file is not None:
        official = pd.read_csv(split_file, dtype={"dicom_id": str})
        mapping = dict(zip(official.dicom_id, official.split.map(lambda s: _SPLITS.get(str(s).strip().lower()))))
        df["split"] = [mapping.get(d) for d in meta.dicom_id]
        unlisted = df["split"].isna()
        if unlisted.any():
            raise MedsynthError(f"MIMIC-CXR: {int(unlisted.sum())} images are not in {split_file.name} "
                                "(or have an unknown split name)")
    else:
        df["split"] = patient_split(meta.subject_id, ctx.split_fractions, ctx.key, ctx.name).to_numpy()

    labels_file = find_table(root, "chexpert", required=False)
    if labels_file is not None:
        lab = pd.read_csv(labels_file, dtype={"study_id": str}).drop_duplicates("study_id").set_index("study_id")
        lab = lab.reindex(columns=CHEXPERT_LABELS).astype(float)
        joined = lab.reindex(meta.study_id.to_numpy())
        for label in CHEXPERT_LABELS:
            df[label] = joined[label].to_numpy()
    else:
        for label in CHEXPERT_LABELS:
            df[label] = float("nan")
    return df
