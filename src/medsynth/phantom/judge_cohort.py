"""The judge's own phantom cohort: balanced, labelled radiographs that no generator trains or is evaluated on.

The project's classifier (the "judge", medsynth.classifier.judge) scores real and generated phantom images for
several papers. Trained on the generators' cohort it would judge images it had seen, and that cohort is too small and
too skewed (its findings follow the causal rules: a few positives per split) for an AUC that means anything. This
cohort is drawn for the judge alone:

- patients ``PJ000000``.. (the generators' cohort uses ``PH``..): synthetic keys in their own namespace, which
  train_classifier checks against the judged dataset's patients (check_disjoint);
- every random stream seeded by ``[seed, index, stream, JUDGE_STREAM_TAG]``: four entropy words where the generators'
  cohort uses three (medsynth.phantom.cohort.rng_for), so no judge patient repeats a generator patient's draws;
- labels from what the radiograph shows: a drawn finding whose projected mask covers less than MIN_VISIBLE_MM2
  mm^2 (overwritten by a later edit) is labelled absent;
- findings balanced instead of causal: a share of patients is normal, every other patient carries each visible
  finding (effusion, cardiomegaly, consolidation, pneumothorax, nodule) with one probability and the subtle ones
  (atelectasis, emphysema) with a smaller one, independently -- so each finding has many positives and negatives
  and no finding predicts another;
- the same anatomy, findings, acquisition and renderer as the generators' cohort, written as DICOM and read back
  through the same preprocessing (window, resize, CLAHE) as the dataset it judges, so the judge sees images
  exactly like the ones it will score. Only the PNG and the labels are kept (no CT, no DICOM: no PHI on disk).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from ..io import write_table
from ..manifest import CHEXPERT_LABELS, SPLITS
from . import export, findings as fnd
from .attributes import FINDINGS
from .cohort import STREAMS, _resolved, chexpert_labels, choose_acquisition
from .ct import Anatomy, load_anatomy
from .render import render

log = logging.getLogger(__name__)

JUDGE_STREAM_TAG = 0x4A554447  # "JUDG": the fourth entropy word of every judge random stream
KEY_PREFIX = "PJ"
VISIBLE = ["effusion", "cardiomegaly", "consolidation", "pneumothorax", "nodule"]
SUBTLE = [f for f in FINDINGS if f not in VISIBLE]
DEFAULTS = {"n_patients": 640, "shard_size": 160, "seed": 0, "normal_fraction": 0.25, "prevalence": 0.4,
            "subtle_prevalence": 0.15, "split": {"train": 0.5, "val": 0.15, "test": 0.35}}


def judge_settings(cfg: dict | None) -> dict:
    """The config's `classifier.judge` cohort keys over the defaults."""
    cfg = dict(cfg or {})
    out = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    out["split"] = {**DEFAULTS["split"], **(cfg.get("split") or {})}
    if sum(float(out["split"].get(s, 0)) for s in SPLITS) <= 0:
        raise MedsynthError("config error at 'classifier.judge.split': fractions must sum to a positive number")
    return out


def judge_key(index: int) -> str:
    return f"{KEY_PREFIX}{index:06d}"


def judge_entropy(seed: int, index: int, purpose: str) -> list[int]:
    return [int(seed), int(index), STREAMS[purpose], JUDGE_STREAM_TAG]


def judge_rng(seed: int, index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(judge_entropy(seed, index, purpose))


def balanced_findings(rng: np.random.Generator, cfg: dict) -> dict[str, bool]:
    """Which findings a judge patient has: normal with probability normal_fraction, else each visible finding with
    `prevalence` and each subtle one with `subtle_prevalence`, independently."""
    u = rng.random(1 + len(FINDINGS))
    if u[0] < cfg["normal_fraction"]:
        return {f: False for f in FINDINGS}
    return {f: bool(u[1 + i] < (cfg["prevalence"] if f in VISIBLE else cfg["subtle_prevalence"]))
            for i, f in enumerate(FINDINGS)}


def split_of(seed: int, index: int, fractions: dict) -> str:
    """A patient's split from its own stream (independent of its findings and of the shard it lands in)."""
    fr = np.array([float(fractions.get(s, 0)) for s in SPLITS])
    u = judge_rng(seed, index, "identity").random()
    return SPLITS[int(np.searchsorted(np.cumsum(fr / fr.sum()), u, side="right").clip(0, len(SPLITS) - 1))]


def shard_indices(shard: str | int, cfg: dict) -> range:
    i, size = int(shard), int(cfg["shard_size"])
    lo, hi = i * size, min((i + 1) * size, int(cfg["n_patients"]))
    if lo >= hi:
        raise MedsynthError(f"judge cohort shard {shard} is empty: n_patients={cfg['n_patients']}, shard_size={size}")
    return range(lo, hi)


def _levels(image01: np.ndarray, work: Path, key: str, modality: str, mono1: bool, pixel_mm: float, rng, technique):
    """The radiograph as the dataset's preprocessing sees it: written as the cohort's DICOM, read back as levels."""
    from ..preprocess.images import load_levels

    tmp = work / f".{key}.dcm"
    who = export.fake_identity(rng, 60.0, bool(rng.random() < 0.5))
    export.write_radiograph_dicom(tmp, image01, modality=modality, monochrome1=mono1, view="PA", pixel_mm=pixel_mm,
                                  who=who, sex=None, age_years=None, uid_entropy=["medsynth-judge", key],
                                  acquisition=technique)
    try:
        levels, _ = load_levels(tmp)
    finally:
        tmp.unlink(missing_ok=True)  # the DICOM carries a fake identity: never kept
    return levels


MIN_VISIBLE_MM2 = 40.0  # projected ground-truth area a finding needs to be labelled present (a 7 mm disc)


def visible_findings(found: list, lesion2d: np.ndarray, pixel_mm: float, min_mm2: float = MIN_VISIBLE_MM2) -> set[str]:
    """The findings the radiograph shows: those whose projected mask keeps at least `min_mm2` (at least one
    pixel). A finding another edit overwrote (or that landed outside the detector field) is not in the image, and
    a label the image cannot show only teaches the judge noise."""
    min_px = max(1, int(np.ceil(min_mm2 / pixel_mm ** 2)))
    return {f.name for f in found if int(((lesion2d >> fnd.FINDING_BITS[f.name]) & 1).sum()) >= min_px}


def judge_patient(anat: Anatomy, index: int, cfg: dict, phantom: dict, pp: dict, out_dir: Path) -> dict:
    """Render one judge patient into out_dir/images/<key>.png; its table row (path relative to out_dir)."""
    from ..preprocess.images import render as preprocess_render, write_png

    key, seed = judge_key(index), int(cfg["seed"])
    present = balanced_findings(judge_rng(seed, index, "attributes"), cfg)
    hu = anat.clone_hu()
    found, lesion3d, _ = fnd.apply_findings(hu, anat, present, judge_rng(seed, index, "findings"))
    r_rng = judge_rng(seed, index, "render")
    acq, modality, mono1, technique = choose_acquisition(r_rng, phantom)
    rad = render(hu, lesion3d, anat.spacing, anat.detector_center("PA", acq.fov_mm), int(phantom["size"]), acq,
                 r_rng, view="PA")
    levels = _levels(rad.image, out_dir, key, modality, mono1, rad.pixel_mm, judge_rng(seed, index, "report"),
                     technique)
    image = preprocess_render(levels, pp)
    rel = f"images/{key}.png"
    write_png(image, out_dir / rel)
    names = visible_findings(found, rad.lesion, rad.pixel_mm)
    row = {"id": key, "patient_id": key, "split": split_of(seed, index, cfg["split"]), "image": rel, "view": "PA",
           "seed_entropy": ",".join(map(str, judge_entropy(seed, index, "findings"))),
           **{f: int(f in names) for f in FINDINGS}, "finding_list": ";".join(sorted(names)) or "no_finding"}
    row.update(chexpert_labels({f: f in names for f in FINDINGS}))
    return row


def render_shard(shard: str | int, judge_cfg: dict, phantom_cfg: dict, dataset_cfg: dict, out_dir: Path,
                 anat: Anatomy | None = None) -> pd.DataFrame:
    """All judge patients of one shard into out_dir (images/ + patients.parquet, written last)."""
    from ..preprocess.images import preprocess_settings

    cfg, phantom, pp = judge_settings(judge_cfg), _resolved(dict(phantom_cfg or {})), preprocess_settings(dataset_cfg)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    anat = anat if anat is not None else load_anatomy(int(phantom["ct_downsample"]))
    rows = []
    for index in shard_indices(shard, cfg):
        rows.append(judge_patient(anat, index, cfg, phantom, pp, out_dir))
        log.info("judge patient %s (%s): %s", rows[-1]["id"], rows[-1]["split"], rows[-1]["finding_list"])
    table = pd.DataFrame(rows)
    write_table(table, out_dir / "patients.parquet")
    return table


def merge_shards(shard_dirs: list[Path], cohort_dir: Path) -> pd.DataFrame:
    """One manifest of the judge cohort; `image` relative to cohort_dir (where manifest.parquet lives)."""
    cohort_dir = Path(cohort_dir).resolve()
    parts = []
    for d in map(Path, shard_dirs):
        if not (d / "patients.parquet").is_file():
            raise MedsynthError(f"judge cohort shard {d} has no patients.parquet: its render job did not finish")
        t = pd.read_parquet(d / "patients.parquet")
        prefix = d.resolve().relative_to(cohort_dir).as_posix()
        t["image"] = [f"{prefix}/{p}" for p in t["image"]]
        parts.append(t)
    table = pd.concat(parts, ignore_index=True).sort_values("id").reset_index(drop=True)
    if table["patient_id"].duplicated().any():
        raise MedsynthError(f"duplicate judge patient {table.loc[table['patient_id'].duplicated(), 'id'].iloc[0]}")
    return table


def label_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Positives per CheXpert label and split (what the held-out AUC's confidence interval rests on)."""
    labels = [c for c in CHEXPERT_LABELS if c in table.columns]
    return (table.groupby("split")[labels].sum().astype(int).T.reindex(columns=list(SPLITS), fill_value=0)
            .rename_axis("label").reset_index())


def check_disjoint(judge: pd.DataFrame, judged: pd.DataFrame, judged_name: str) -> dict:
    """Refuse a judge cohort that shares a patient with the dataset it judges; the check as a provenance record."""
    shared = sorted(set(judge["patient_id"].astype(str)) & set(judged["patient_id"].astype(str)))
    if shared:
        raise MedsynthError(f"the judge's cohort shares {len(shared)} patient(s) with {judged_name} "
                            f"(e.g. {shared[0]}): it would judge images of patients it was trained on")
    return {"judged_dataset": judged_name, "judged_patients": int(judged["patient_id"].nunique()),
            "judge_patients": int(judge["patient_id"].nunique()), "shared_patients": 0}
