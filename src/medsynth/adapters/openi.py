"""OpenI / IU X-ray (NLM) images + reports -> raw manifest, one row per image.

Layout (root = the dataset folder, as downloaded from openi.nlm.nih.gov):
  <any folder>/CXR1_1_IM-0001-3001.png, ...     NLMCXR_png (PNG images, named by image id)
  ecgen-radiology/1.xml, ...                    NLMCXR_reports (XML; <parentImage id=...> names its images)
Reports join images through parentImage ids. A report without images gives no row (there is no image to
train on); an image id a report names but whose PNG is missing
becomes a 'missing file' reject in preprocessing. Views come from the IU X-ray DICOM
metadata shipped by torchxrayvision (see openi_reports.openi_views); the report id is the patient key.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MedsynthError
from . import check_listed_files
from ..ids import pseudonym
from ..manifest import CHEXPERT_LABELS, patient_split
from ..reports import make_prompt
from .openi_reports import openi_views, report_records


def _xml_items(files: list[Path]):
    for path in files:
        yield str(path.resolve()), path.read_bytes()


def build(ctx) -> pd.DataFrame:
    root = ctx.root
    fmt = ctx.cfg.get("image_format", "auto")
    if fmt not in ("auto", "png"):
        raise MedsynthError(f"datasets.{ctx.name}.image_format: the OpenI adapter reads the PNG release")
    # the reports live in ecgen-radiology/; other XML a user keeps beside them is not a report
    xml_files = sorted(root.rglob("ecgen-radiology/*.xml")) or sorted(root.rglob("*.xml"))
    if not xml_files:
        raise MedsynthError(f"OpenI: no XML reports (ecgen-radiology/*.xml) below {root}")
    images = {p.stem: p for p in root.rglob("*") if p.suffix.lower() == ".png" and p.is_file()}
    if not images:
        raise MedsynthError(f"OpenI: no PNG images below {root}")
    records = report_records(_xml_items(xml_files))

    rows = [(rec, image_id) for rec in records for image_id in rec["image_ids"]]
    # An image a report names but whose PNG is absent stays a row: preprocessing rejects it ('missing file').
    check_listed_files("OpenI", [images.get(i, root / f"{i}.png") for _, i in rows], root)
    if not rows:
        raise MedsynthError(f"OpenI: no report below {root} names an image")
    views = openi_views()
    report_ids = pd.Series([rec["report_id"] for rec, _ in rows])
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", i) for _, i in rows],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", r) for r in report_ids],
        "split": patient_split(report_ids, ctx.split_fractions, ctx.key, ctx.name).to_numpy(),
        "source": [str(images[i].resolve()) if i in images else str(root / f"{i}.png") for _, i in rows],
        "view": [views.get(i, "") for _, i in rows],
        "findings": [rec["findings"] for rec, _ in rows],
        "impression": [rec["impression"] for rec, _ in rows],
        "indication": [rec["indication"] for rec, _ in rows],
        "prompt": [make_prompt(rec["findings"], rec["impression"]) for rec, _ in rows],
        "mesh_major": ["; ".join(rec["mesh_major"]) for rec, _ in rows],
    })
    for label in CHEXPERT_LABELS:
        df[label] = [float(rec[label]) for rec, _ in rows]
    return df
