"""Embedded OpenI / IU X-ray reports (torchxrayvision's NLMCXR_reports.tgz, 3,955 XML reports) -> table manifest.

Read straight from the tar (nothing extracted). One row per report: sections, MeSH major/automatic terms, the ids
of its images, CheXpert-space labels from the MeSH major terms (medsynth.labels) and the prompt
'FINDINGS: ... IMPRESSION: ...'. IU X-ray has no patient ids; one report is one patient's study, so the report id
is the patient key. Reports with no findings and no impression keep an empty prompt; the table shard rejects them.
The helpers here are shared with the `openi` image adapter.
"""
from __future__ import annotations

import logging
import tarfile
from pathlib import Path
from typing import Iterable

import pandas as pd

from .. import embedded
from ..errors import MedsynthError, RejectedInput
from ..ids import pseudonym
from ..labels import mesh_to_chexpert, normalize_view
from ..manifest import CHEXPERT_LABELS, patient_split
from ..reports import make_prompt, parse_openi_xml

log = logging.getLogger(__name__)


def report_records(items: Iterable[tuple[str, bytes]]) -> list[dict]:
    """Parsed reports from (source, xml bytes) pairs; unreadable XML is an error naming the file."""
    records = []
    for source, data in items:
        try:
            rec = parse_openi_xml(data)
        except RejectedInput as exc:
            raise MedsynthError(f"OpenI report {source}: {exc}") from None
        if not rec["report_id"]:
            raise MedsynthError(f"OpenI report {source}: no <uId id=...>")
        rec["source"] = source
        rec.update(mesh_to_chexpert(rec["mesh_major"]))  # major terms are curated; automatic ones are not negation-aware
        records.append(rec)
    return records


def tar_items(path: Path) -> Iterable[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                yield f"{path.resolve()}::{member.name}", tar.extractfile(member).read()


def openi_views() -> dict[str, str]:
    """Image id -> view, from the IU X-ray DICOM metadata torchxrayvision ships (View Position, else its t-SNE
    PA/L estimate). Only those two columns are read: the table also holds DICOM header fields we do not want."""
    try:
        meta_path = embedded.package_file("torchxrayvision", "data/nlmcxr_dicom_metadata.csv.gz")
        tsne_path = embedded.package_file("torchxrayvision", "data/nlmcxr_tsne_pa.csv.gz")
    except MedsynthError as exc:
        log.warning("OpenI views unknown (%s)", exc)
        return {}
    views = {i: normalize_view(v) for i, v in pd.read_csv(tsne_path).itertuples(index=False)}
    meta = pd.read_csv(meta_path, usecols=["imageid", "View Position"])
    views.update({i: normalize_view(v) for i, v in meta.itertuples(index=False) if normalize_view(v)})
    return views


def build(ctx) -> pd.DataFrame:
    records = report_records(tar_items(embedded.openi_reports()))
    if not records:
        raise MedsynthError("NLMCXR_reports.tgz holds no XML reports; reinstall torchxrayvision")
    rep = pd.DataFrame(records)
    df = pd.DataFrame({
        "id": [pseudonym(ctx.key, f"{ctx.name}/image", r) for r in rep.report_id],
        "patient_id": [pseudonym(ctx.key, f"{ctx.name}/patient", r) for r in rep.report_id],
        "split": patient_split(rep.report_id, ctx.split_fractions, ctx.key, ctx.name).to_numpy(),
        "source": rep.source.to_numpy(),
        "view": "",
        "findings": rep.findings.to_numpy(),
        "impression": rep.impression.to_numpy(),
        "indication": rep.indication.to_numpy(),
        "comparison": rep.comparison.to_numpy(),
        "prompt": [make_prompt(f, i) for f, i in zip(rep.findings, rep.impression)],
        "mesh_major": ["; ".join(t) for t in rep.mesh_major],
        "mesh_automatic": ["; ".join(t) for t in rep.mesh_automatic],
        "image_ids": [";".join(t) for t in rep.image_ids],
    })
    for label in CHEXPERT_LABELS:
        df[label] = rep[label].astype(float).to_numpy()
    return df
