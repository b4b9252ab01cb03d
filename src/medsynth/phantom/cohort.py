"""Virtual patients end to end: attributes -> findings -> radiograph(s), CT, masks, report -> one table row.

Each patient draws from its own random streams, seeded by (seed, patient index, purpose), so a patient does not
depend on the shard it lands in, and `cohort_attributes` reproduces the attributes of a generated cohort without
rendering anything.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from ..io import read_table, write_table
from ..manifest import CHEXPERT_LABELS
from . import attributes, export, findings as fnd, reporting
from .ct import Anatomy, load_anatomy
from .render import Acquisition, render

log = logging.getLogger(__name__)

# CheXpert label space: which labels each finding turns positive. Emphysema has no CheXpert label (it still
# makes 'No Finding' 0: CheXpert's No Finding means no pathology at all).
CHEXPERT_MAP = {"effusion": ["Pleural Effusion"], "cardiomegaly": ["Cardiomegaly"], "nodule": ["Lung Lesion"],
                "consolidation": ["Consolidation", "Lung Opacity"], "atelectasis": ["Atelectasis", "Lung Opacity"],
                "pneumothorax": ["Pneumothorax"], "emphysema": []}
STREAMS = {"attributes": 0, "findings": 1, "render": 2, "identity": 3, "report": 4}
PATH_COLUMNS = ["cxr_pa", "cxr_ll", "lesion2d_pa", "lesion2d_ll", "ct", "seg", "lesion3d", "report"]
DEFAULTS = {"n_patients": 120, "shard_size": 40, "size": 256, "ct_downsample": 2, "ct_store_downsample": 1,
            "lateral": False,
            "monochrome1_fraction": 0.3, "modality_cr_fraction": 0.5}


def patient_key(index: int) -> str:
    return f"PH{index:06d}"


def rng_for(seed: int, index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), STREAMS[purpose]])


def patient_attributes(seed: int, index: int) -> tuple[dict, dict, dict[str, bool]]:
    return attributes.sample_attributes(rng_for(seed, index, "attributes"))


def cohort_attributes(seed: int, n: int) -> pd.DataFrame:
    """Recorded attributes, true state and findings of patients 0..n-1 (no images): for checking the rules."""
    rows = []
    for i in range(n):
        rec, state, present = patient_attributes(seed, i)
        rows.append({"patient_key": patient_key(i), **rec, **{f"true_{k}": v for k, v in state.items()},
                     **{f: int(v) for f, v in present.items()}})
    return pd.DataFrame(rows)


def chexpert_labels(present: dict[str, bool]) -> dict[str, float]:
    labels = {name: 0.0 for name in CHEXPERT_LABELS}
    for finding, on in present.items():
        if on:
            for label in CHEXPERT_MAP[finding]:
                labels[label] = 1.0
    labels["No Finding"] = 0.0 if any(present.values()) else 1.0
    return labels


def _resolved(cfg: dict) -> dict:
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise MedsynthError(f"config error at 'phantom': unknown key(s) {', '.join(sorted(unknown))}")
    return {**DEFAULTS, **cfg}


def choose_acquisition(r_rng: np.random.Generator, cfg: dict) -> tuple[Acquisition, str, bool, dict]:
    """Pose/exposure, modality (CR share = modality_cr_fraction), MONOCHROME1 or not, and the technique tags."""
    acq = Acquisition.sample(r_rng)
    modality = "CR" if r_rng.random() < cfg["modality_cr_fraction"] else "DX"
    mono1 = bool(r_rng.random() < cfg["monochrome1_fraction"])
    technique = {"kvp": float(r_rng.uniform(110, 125)), "exposure_ms": int(r_rng.integers(5, 20)),
                 "ma": int(r_rng.integers(160, 400))}
    return acq, modality, mono1, technique


def generate_patient(anat: Anatomy, index: int, seed: int, cfg: dict, shard_dir: Path) -> dict:
    """Write one patient's files below shard_dir/<patient_key>/ and return its table row (paths relative to
    shard_dir)."""
    cfg = _resolved(cfg)
    key = patient_key(index)
    folder = Path(shard_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    recorded, state, present = patient_attributes(seed, index)

    hu = anat.clone_hu()
    found, lesion3d, seg = fnd.apply_findings(hu, anat, present, rng_for(seed, index, "findings"))

    r_rng = rng_for(seed, index, "render")
    acq, modality, mono1, acquisition = choose_acquisition(r_rng, cfg)
    who = export.fake_identity(rng_for(seed, index, "identity"), state["age"], state["male"])
    rec_age = recorded["age"]
    dicom_age = int(rec_age) if rec_age == rec_age and rec_age != attributes.AGE_SENTINEL else None

    row: dict = {"patient_key": key, **recorded}
    views = ["PA", "LL"] if cfg["lateral"] else ["PA"]
    for view in views:
        rad = render(hu, lesion3d, anat.spacing, anat.detector_center(view, acq.fov_mm), int(cfg["size"]), acq,
                     r_rng, view=view)
        tag = view.lower()
        export.write_radiograph_dicom(
            folder / f"cxr_{tag}.dcm", rad.image, modality=modality, monochrome1=mono1, view=view,
            pixel_mm=rad.pixel_mm, who=who, sex=recorded["sex"], age_years=dicom_age,
            uid_entropy=["medsynth-phantom", str(seed), key], acquisition=acquisition,
            n_views=len(views))
        export.write_png(folder / f"lesion2d_{tag}.png", rad.lesion)
        row[f"cxr_{tag}"] = f"{key}/cxr_{tag}.dcm"
        row[f"lesion2d_{tag}"] = f"{key}/lesion2d_{tag}.png"
        row["pixel_mm"] = rad.pixel_mm
    for view in {"PA", "LL"} - set(views):
        row[f"cxr_{view.lower()}"] = row[f"lesion2d_{view.lower()}"] = ""

    # The CT carries the patient's size: same voxels, spacing scaled like the radiograph's magnification.
    # Volumes are cropped to the body's box (the air around it carries nothing and costs disk).
    box = anat.body_box
    affine = anat.affine.copy()
    affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.array([b.start for b in box], dtype=float)
    ct_vol, seg_vol, lesion_vol, affine = store_grid(hu[box], seg[box], lesion3d[box], affine,
                                                     int(cfg["ct_store_downsample"]))
    affine[:3, :3] *= acq.scale
    export.write_nifti(folder / "ct.nii.gz", np.clip(np.rint(ct_vol), -1024, 3071).astype(np.int16), affine)
    export.write_nifti(folder / "seg.nii.gz", seg_vol, affine)
    export.write_nifti(folder / "lesion3d.nii.gz", lesion_vol, affine)
    row.update({"ct": f"{key}/ct.nii.gz", "seg": f"{key}/seg.nii.gz", "lesion3d": f"{key}/lesion3d.nii.gz"})

    text, impression = reporting.write_report(found, rng_for(seed, index, "report"))
    export.write_text(folder / "report.txt", f"FINDINGS: {text}\n\nIMPRESSION: {impression}\n")
    row["report"] = f"{key}/report.txt"

    by_name = {f.name: f for f in found}
    for name in attributes.FINDINGS:
        f = by_name.get(name)
        row[name] = int(f is not None)
        row[f"{name}_severity"] = f.severity if f else ""
        row[f"{name}_side"] = f.side if f else ""
        row[f"{name}_location"] = f.location if f else ""
    row["nodule_size_mm"] = round(by_name["nodule"].size_mm, 1) if "nodule" in by_name else 0.0
    row["finding_list"] = ";".join(f.name for f in found) or "no_finding"
    row.update(chexpert_labels({f: f in by_name for f in attributes.FINDINGS}))
    row.update({"findings": text, "impression": impression, "prompt": f"FINDINGS: {text} IMPRESSION: {impression}",
                "modality": modality, "photometric": "MONOCHROME1" if mono1 else "MONOCHROME2",
                "patient_scale": round(acq.scale, 4), "lesion_bits": ";".join(f"{k}={1 << v}" for k, v in
                                                                               fnd.FINDING_BITS.items())})
    return row


def store_grid(hu: np.ndarray, seg: np.ndarray, lesion3d: np.ndarray, affine: np.ndarray, k: int):
    """The CT as stored: block-averaged in-plane by k (`phantom.ct_store_downsample`; the radiographs are rendered
    from the full grid before this). HU: block mean; segmentation: the block's centre voxel; the lesion bitmask:
    bitwise OR over the block, so no finding smaller than a block disappears. Returns contiguous arrays and the
    affine of the coarser grid."""
    if k < 1:
        raise MedsynthError(f"phantom.ct_store_downsample must be >= 1, got {k}")
    if k == 1:
        return hu, np.ascontiguousarray(seg), np.ascontiguousarray(lesion3d), affine
    nx, ny = (hu.shape[0] // k) * k, (hu.shape[1] // k) * k
    blocks = lambda a: a[:nx, :ny].reshape(nx // k, k, ny // k, k, a.shape[2])
    hu_k = blocks(hu.astype(np.float32)).mean(axis=(1, 3))
    seg_k = np.ascontiguousarray(seg[k // 2:nx:k, k // 2:ny:k])
    lesion_k = np.bitwise_or.reduce(np.bitwise_or.reduce(blocks(lesion3d), axis=3), axis=1)
    affine = affine.copy()
    affine[:3, 3] = affine[:3, 3] + affine[:3, :2] @ np.full(2, (k - 1) / 2.0)
    affine[:3, :2] *= k
    return hu_k, seg_k, np.ascontiguousarray(lesion_k), affine


def shard_indices(shard: str | int, cfg: dict) -> range:
    cfg = _resolved(cfg)
    i, size = int(shard), int(cfg["shard_size"])
    lo, hi = i * size, min((i + 1) * size, int(cfg["n_patients"]))
    if lo >= hi:
        raise MedsynthError(f"phantom shard {shard} is empty: n_patients={cfg['n_patients']}, shard_size={size}")
    return range(lo, hi)


def generate_shard(shard: str | int, cfg: dict, seed: int, out_dir: Path, anat: Anatomy | None = None) -> pd.DataFrame:
    """All patients of one shard into out_dir, plus out_dir/patients.parquet (written last)."""
    cfg = _resolved(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    anat = anat if anat is not None else load_anatomy(int(cfg["ct_downsample"]))
    rows = []
    for index in shard_indices(shard, cfg):
        rows.append(generate_patient(anat, index, seed, cfg, out_dir))
        log.info("patient %s: %s", rows[-1]["patient_key"], rows[-1]["finding_list"])
    table = pd.DataFrame(rows)
    write_table(table, out_dir / "patients.parquet")
    return table


def merge_shards(shard_dirs: list[Path], cohort_dir: Path) -> pd.DataFrame:
    """Concatenate shard tables; file paths become relative to cohort_dir (where cohort.parquet lives)."""
    cohort_dir = Path(cohort_dir).resolve()
    parts = []
    for d in shard_dirs:
        d = Path(d)
        table_path = d / "patients.parquet"
        if not table_path.exists():
            raise MedsynthError(f"phantom shard {d} has no patients.parquet: the generation job did not finish")
        t = read_table(table_path)
        prefix = d.resolve().relative_to(cohort_dir).as_posix()
        for col in PATH_COLUMNS:
            t[col] = t[col].map(lambda p: f"{prefix}/{p}" if p else "")
        parts.append(t)
    table = pd.concat(parts, ignore_index=True).sort_values("patient_key").reset_index(drop=True)
    if table["patient_key"].duplicated().any():
        raise MedsynthError(f"duplicate patient {table.loc[table['patient_key'].duplicated(), 'patient_key'].iloc[0]}")
    return table


def prevalence(table: pd.DataFrame) -> pd.DataFrame:
    """Counts and fractions of every CheXpert label and every phantom finding."""
    n = len(table)
    rows = [{"kind": "chexpert", "label": c, "count": int((table[c] == 1).sum())} for c in CHEXPERT_LABELS]
    rows += [{"kind": "finding", "label": f, "count": int(table[f].sum())} for f in attributes.FINDINGS]
    out = pd.DataFrame(rows)
    out["n"] = n
    out["fraction"] = (out["count"] / max(n, 1)).round(4)
    return out
