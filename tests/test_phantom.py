"""Phantom cohort: anatomy orientation, causal rules, findings localisation, DICOM/NIfTI export, reports, merge,
adapters. Small: the CT downsampled 4x in-plane, radiographs 64-96 px."""
import hashlib
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from medsynth.adapters import AdapterContext, build_manifest
from medsynth.errors import MedsynthError
from medsynth.io import write_table
from medsynth.manifest import CHEXPERT_LABELS
from medsynth.phantom import attributes, cohort, findings as F, reporting
from medsynth.phantom.ct import load_anatomy
from medsynth.phantom.render import Acquisition, project, render, to_detector

SEED = 3
CFG = {"n_patients": 4, "shard_size": 2, "size": 64, "ct_downsample": 4, "lateral": True,
       "monochrome1_fraction": 0.5, "modality_cr_fraction": 0.5}


@pytest.fixture(scope="module")
def anat():
    return load_anatomy(4)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def first_index_with_findings(seed: int) -> int:
    table = cohort.cohort_attributes(seed, 50)
    return int(np.flatnonzero(table[attributes.FINDINGS].sum(axis=1).to_numpy() > 0)[0])


def test_anatomy_orientation(anat):
    """LAS axes: left lung at higher axis-0 index, heart anterior of the spine, trachea above the lungs' centre."""
    x, y, z = (np.arange(n) for n in anat.hu.shape)
    centroid = lambda m: np.array([np.argwhere(m)[:, k].mean() for k in range(3)])  # noqa: E731
    left, right = centroid(anat.lung_left), centroid(anat.lung_right)
    assert left[0] > right[0] + 10
    spine = anat.mask(*[n for n in anat.ids if n.startswith("vertebrae_T")])
    assert centroid(anat.heart)[1] > centroid(spine)[1] + 5
    assert centroid(anat.airway)[2] > (left[2] + right[2]) / 2
    assert np.allclose(anat.spacing, [0.703125 * 4, 0.703125 * 4, 2.5])
    assert anat.hu.min() >= -1024 and (anat.hu[~anat.body] == -1000).all()


def test_causal_rules_hold_in_attributes():
    t = cohort.cohort_attributes(11, 4000)
    by_smoking = t.groupby("true_smoking")[["emphysema", "nodule"]].mean()
    assert by_smoking.loc["current", "emphysema"] > 4 * by_smoking.loc["never", "emphysema"]
    assert by_smoking.loc["current", "nodule"] > 2 * by_smoking.loc["never", "nodule"]
    old = t["true_age"] >= 70
    assert t.loc[old, "cardiomegaly"].mean() > 2 * t.loc[t["true_age"] < 50, "cardiomegaly"].mean()
    assert t.loc[t["cardiomegaly"] == 1, "effusion"].mean() > 2 * t.loc[t["cardiomegaly"] == 0, "effusion"].mean()
    assert t.loc[t["emphysema"] == 1, "pneumothorax"].mean() > 2 * t.loc[t["emphysema"] == 0, "pneumothorax"].mean()
    # Observed prevalence matches the stated model (mean of the rule's probabilities), finding by finding.
    for f in attributes.FINDINGS:
        expected = np.mean([
            attributes.finding_probability(f, {"age": r.true_age, "male": r.true_male, "smoking": r.true_smoking,
                                               "pack_years": r.true_pack_years, "exposure": r.true_exposure},
                                           {g: bool(getattr(r, g)) for g in attributes.FINDINGS[:attributes.FINDINGS.index(f)]})
            for r in t.itertuples()])
        assert abs(t[f].mean() - expected) < 0.02, f


def test_recorded_table_has_missing_and_sentinels():
    t = cohort.cohort_attributes(5, 1500)
    assert t["age"].isna().any() and (t["age"] == attributes.AGE_SENTINEL).any()
    assert t["sex"].isna().any() and set(t["sex"].dropna()) == {"M", "F"}
    assert set(t["smoking_status"]) == {"never", "former", "current", "unknown"}
    assert (t.loc[t["smoking_status"] == "never", "pack_years"] == 0).all()
    assert (t["pack_years"] == -1).any() and (t["pack_years"] == 99999).any() and t["pack_years"].isna().any()
    assert t["occupational_exposure"].isna().any() and set(t["occupational_exposure"].dropna()) == {"yes", "no"}
    # Recorded values are the truth where not missing/sentinel.
    ok = t["age"].notna() & (t["age"] != 999)
    assert (t.loc[ok, "age"] == t.loc[ok, "true_age"].astype(int)).all()


def _pa_line(anat, hu, acq, size=96):
    sp = anat.spacing
    return to_detector(project(hu, sp, 1, acq), (sp[0], sp[2]), anat.detector_center("PA", acq.fov_mm), size, acq)


def _pa_mask(anat, volume, acq, size=96):
    sp = anat.spacing
    plane = np.bitwise_or.reduce(volume.astype(np.uint8), axis=1)
    return to_detector(plane, (sp[0], sp[2]), anat.detector_center("PA", acq.fov_mm), size, acq, nearest=True) > 0


DENSER = {"effusion", "cardiomegaly", "nodule", "consolidation", "atelectasis"}


@pytest.mark.parametrize("name", list(F.EDITORS))
def test_finding_changes_image_inside_its_mask(anat, name):
    """Attenuation changes where the projected ground-truth mask is, with the right sign, and (nearly) nowhere
    else. Pneumothorax also compresses the lung it leaves behind, so its check is the hemithorax."""
    acq = Acquisition()
    base = _pa_line(anat, anat.hu, acq)
    hu = anat.clone_hu()
    found, lesion, seg = F.apply_findings(hu, anat, {name: True}, np.random.default_rng(1))
    assert [f.name for f in found] == [name]
    delta = _pa_line(anat, hu, acq) - base
    mask = _pa_mask(anat, lesion > 0, acq)
    assert mask.sum() >= 5
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    energy = np.abs(delta)
    assert energy[mask].mean() > 0.03  # line-integral units: >3% transmission change on average
    signed = delta[mask].sum()
    assert signed > 0 if name in DENSER else signed < 0
    if name == "pneumothorax":
        side = found[0].side
        hemi = cv2.dilate(_pa_mask(anat, anat.lung(side), acq).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert energy[hemi].sum() / energy.sum() > 0.99
        assert energy[near].sum() / energy.sum() > 0.4
        assert ((seg == (1 if side == "right" else 2)) & (lesion > 0)).sum() == 0  # rim is not lung
    else:
        assert energy[near].sum() / energy.sum() > 0.95


def test_radiograph_orientation_and_visible_finding(anat):
    """PA: heart to the viewer's right (patient's left), apices at the top; lateral: anterior (heart) on the left
    of the spine. On the final processed image a large effusion whitens its mask region and little else."""
    acq = Acquisition()
    spine = anat.mask(*[n for n in anat.ids if n.startswith("vertebrae_T")]).astype(np.uint8)
    bits = anat.heart.astype(np.uint8) | (spine << 1) | (anat.lung_right.astype(np.uint8) << 2)
    views = {}
    for view in ("PA", "LL"):
        rad = render(anat.hu, bits, anat.spacing, anat.detector_center(view, acq.fov_mm), 96, acq,
                     np.random.default_rng(0), view=view)
        views[view] = {k: np.argwhere(rad.lesion & b).mean(axis=0) for k, b in (("heart", 1), ("spine", 2), ("rlung", 4))}
    pa, ll = views["PA"], views["LL"]
    assert pa["heart"][1] > 48 + 3 and pa["rlung"][1] < 48 - 10  # columns: right lung on the viewer's left
    assert pa["rlung"][0] < pa["heart"][0]  # rows: lungs reach higher than the heart
    assert ll["heart"][1] < ll["spine"][1] - 10

    rng = np.random.default_rng(0)
    while True:  # a large effusion, for an unambiguous test of the whole render chain
        trial = anat.clone_hu()
        f = F.effusion(trial, anat, rng)
        if f.severity == "large":
            hu, mask3d = trial, f.mask
            break
    before = render(anat.hu, np.zeros(hu.shape, np.uint8), anat.spacing, anat.detector_center("PA", acq.fov_mm), 96,
                    acq, np.random.default_rng(7))
    after = render(hu, mask3d.astype(np.uint8), anat.spacing, anat.detector_center("PA", acq.fov_mm), 96, acq,
                   np.random.default_rng(7))
    m = after.lesion > 0
    far = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    diff = after.image - before.image
    assert diff[m].mean() > 0.08 and diff[m].mean() > 4 * np.abs(diff[far]).mean()


def test_shard_generation_is_deterministic_and_complete(anat, tmp_path):
    index = first_index_with_findings(SEED)
    cfg = {**CFG, "n_patients": index + 1, "shard_size": index + 1}
    rows = [cohort.generate_patient(anat, index, SEED, cfg, tmp_path / d) for d in ("a", "b")]
    assert rows[0] == rows[1]
    row = rows[0]
    for col in ["cxr_pa", "cxr_ll", "lesion2d_pa", "lesion2d_ll", "ct", "seg", "lesion3d", "report"]:
        a, b = tmp_path / "a" / row[col], tmp_path / "b" / row[col]
        assert a.is_file() and digest(a) == digest(b), col
    other = cohort.generate_patient(anat, index, SEED + 1, cfg, tmp_path / "c")
    assert digest(tmp_path / "c" / other["cxr_pa"]) != digest(tmp_path / "a" / row["cxr_pa"])

    ct = nib.load(tmp_path / "a" / row["ct"])
    seg = np.asarray(nib.load(tmp_path / "a" / row["seg"]).dataobj)
    lesion = np.asarray(nib.load(tmp_path / "a" / row["lesion3d"]).dataobj)
    assert ct.get_data_dtype() == np.int16 and ct.shape == seg.shape == lesion.shape
    assert nib.aff2axcodes(ct.affine) == ("L", "A", "S")
    assert set(np.unique(seg)) <= {0, 1, 2, 3} and {1, 2, 3} <= set(np.unique(seg))
    bits = sum(1 << F.FINDING_BITS[f] for f in row["finding_list"].split(";"))
    assert np.bitwise_or.reduce(lesion.ravel()) == bits
    mask2d = cv2.imread(str(tmp_path / "a" / row["lesion2d_pa"]), cv2.IMREAD_UNCHANGED)
    assert mask2d.shape == (64, 64) and np.bitwise_or.reduce(mask2d.ravel()) == bits
    labels = {c: row[c] for c in CHEXPERT_LABELS}
    assert labels["No Finding"] == 0.0 and set(labels.values()) <= {0.0, 1.0}
    report = (tmp_path / "a" / row["report"]).read_text()
    assert report.startswith("FINDINGS: ") and "\n\nIMPRESSION: " in report
    assert row["prompt"] == f"FINDINGS: {row['findings']} IMPRESSION: {row['impression']}"


def test_dicom_holds_fake_phi_and_presentation_tags(anat, tmp_path):
    row = cohort.generate_patient(anat, 0, SEED, {**CFG, "monochrome1_fraction": 0.0}, tmp_path / "m2")
    ds = pydicom.dcmread(tmp_path / "m2" / row["cxr_pa"])
    assert ds.SOPClassUID in ("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1")
    assert ds.Modality in ("DX", "CR") and ds.ViewPosition == "PA" and ds.PhotometricInterpretation == "MONOCHROME2"
    for tag in ["PatientName", "PatientBirthDate", "InstitutionName", "AccessionNumber", "ReferringPhysicianName",
                "StudyDate"]:
        assert str(ds.get(tag, "")).strip(), tag
    assert str(ds.PatientID).startswith("MRN") and len(str(ds.PatientName).split("^")) == 2
    assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and ds.pixel_array.max() <= 4095
    assert ds.pixel_array.shape == (64, 64) and float(ds.PixelSpacing[0]) > 1
    assert float(ds.WindowWidth) > 0 and float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == 0
    # No PHI leaks into the table or the file names.
    text = " ".join(str(v) for v in row.values())
    for tag in ["PatientName", "PatientID", "AccessionNumber", "InstitutionName"]:
        assert str(ds.get(tag)) not in text
    mono1 = cohort.generate_patient(anat, 0, SEED, {**CFG, "monochrome1_fraction": 1.0}, tmp_path / "m1")
    ds1 = pydicom.dcmread(tmp_path / "m1" / mono1["cxr_pa"])
    assert ds1.PhotometricInterpretation == "MONOCHROME1"
    assert (ds1.pixel_array.astype(int) + ds.pixel_array.astype(int) == 4095).all()


def test_modality_and_monochrome1_shares():
    cfg = cohort._resolved({"monochrome1_fraction": 0.3, "modality_cr_fraction": 0.5})
    picks = [cohort.choose_acquisition(cohort.rng_for(0, i, "render"), cfg) for i in range(600)]
    mono1 = np.mean([p[2] for p in picks])
    cr = np.mean([p[1] == "CR" for p in picks])
    assert abs(mono1 - 0.3) < 0.06 and abs(cr - 0.5) < 0.07


def _finding(name, severity="moderate", side="left", location="left lower lobe", size=0.0):
    return F.Finding(name, severity, side, location, np.zeros((1, 1, 1), bool), None, size)


def test_report_negations_and_positives():
    text, impression = reporting.write_report([], np.random.default_rng(0))
    low = text.lower()
    assert "no pleural effusion or pneumothorax" in low or "no pneumothorax or pleural effusion" in low
    assert any(s in low for s in ["heart size is normal", "normal cardiac silhouette", "heart size is within"])
    assert "consolidation" in low or "airspace opacity" in low  # pertinent negative for pneumonia
    assert "acute" in impression.lower() or "normal" in impression.lower()
    text, impression = reporting.write_report([_finding("effusion", "large", "left", "basal")], np.random.default_rng(0))
    low = text.lower()
    assert "left pleural effusion" in low and "no pleural effusion" not in low
    assert "no pneumothorax" in low
    assert "effusion" in impression.lower() and "no acute" not in impression.lower()
    texts = {reporting.write_report([], np.random.default_rng(s))[0] for s in range(20)}
    assert len(texts) > 3  # phrasing varies with the seed
    assert reporting.write_report([], np.random.default_rng(4)) == reporting.write_report([], np.random.default_rng(4))


def test_chexpert_labels():
    none = cohort.chexpert_labels({f: False for f in attributes.FINDINGS})
    assert none["No Finding"] == 1.0 and sum(none.values()) == 1.0
    emph = cohort.chexpert_labels({**{f: False for f in attributes.FINDINGS}, "emphysema": True})
    assert emph["No Finding"] == 0.0 and sum(emph.values()) == 0.0
    cons = cohort.chexpert_labels({**{f: False for f in attributes.FINDINGS}, "consolidation": True})
    assert cons["Consolidation"] == cons["Lung Opacity"] == 1.0 and cons["No Finding"] == 0.0


def test_merge_prevalence_and_adapters(anat, tmp_path):
    results = tmp_path / "results"
    base = results / "raw" / "phantom"
    cfg = {**CFG, "lateral": False}
    dirs = [base / "shards" / s for s in ("00000", "00001")]
    for s, d in zip(("00000", "00001"), dirs):
        cohort.generate_shard(s, cfg, SEED, d, anat=anat)
    with pytest.raises(MedsynthError, match="empty"):
        cohort.shard_indices("00002", cfg)
    table = cohort.merge_shards(dirs, base)
    assert list(table["patient_key"]) == [f"PH{i:06d}" for i in range(4)]
    assert all((base / p).is_file() for p in table["cxr_pa"])
    write_table(table, base / "cohort.parquet")
    prev = cohort.prevalence(table)
    nf = prev[(prev["kind"] == "chexpert") & (prev["label"] == "No Finding")].iloc[0]
    assert nf["count"] == int((table["finding_list"] == "no_finding").sum()) and nf["n"] == 4

    def ctx(adapter):
        return AdapterContext(name=adapter, adapter=adapter, cfg={"adapter": adapter}, key=b"k", results=results)

    cxr, ct = build_manifest(ctx("phantom_cxr")), build_manifest(ctx("phantom_ct"))
    assert len(cxr) == len(ct) == 4 and set(cxr["view"]) == {"PA"} and set(ct["view"]) == {"CT"}
    assert all(Path(p).is_file() for p in list(cxr["source"]) + list(ct["source"]) + list(ct["mask_source"]))
    assert cxr["prompt"].str.startswith("FINDINGS: ").all() and cxr["prompt"].str.contains(" IMPRESSION: ").all()
    assert ((cxr["mask_source"] == "") == (cxr["finding_list"] == "no_finding")).all()
    assert ct["prompt"].str.startswith("Lung CT scan").any()
    # One virtual patient: same pseudonym and split in both datasets; the PH key appears only in source paths
    # (as real datasets' ids do in theirs), which preprocessing replaces by `id`-named files.
    assert list(cxr["patient_id"]) == list(ct["patient_id"]) and list(cxr["split"]) == list(ct["split"])
    meta = cxr.drop(columns=["source", "mask_source"]).astype(str)
    assert not meta.apply(lambda c: c.str.contains("PH0000")).any().any()
    assert set(CHEXPERT_LABELS) <= set(cxr.columns)


def test_unknown_config_key_is_an_error():
    with pytest.raises(MedsynthError, match="unknown key"):
        cohort.shard_indices(0, {"n_patiens": 3})


def test_stored_ct_grid_keeps_world_position_and_small_lesions():
    from medsynth.phantom.cohort import store_grid
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 100, (8, 6, 3)).astype(np.float32)
    seg = np.zeros((8, 6, 3), np.uint8)
    seg[5, 3, :] = 2  # a block's centre voxel (k // 2 = 1 -> indices 1, 3, 5, 7)
    lesion = np.zeros((8, 6, 3), np.uint8)
    lesion[0, 0, 1] = 1 << 2   # one-voxel lesion off the block centre: must survive
    lesion[1, 1, 1] = 1 << 4
    affine = np.diag([1.5, 1.5, 2.5, 1.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    h2, s2, l2, a2 = store_grid(hu, seg, lesion, affine, 2)
    assert h2.shape == s2.shape == l2.shape == (4, 3, 3)
    assert np.isclose(h2[1, 2, 0], hu[2:4, 4:6, 0].mean())
    assert s2[2, 1, 0] == 2 and s2.sum() == 2 * 3
    assert l2[0, 0, 1] == (1 << 2) | (1 << 4) and l2.sum() == l2[0, 0, 1]
    # the coarse voxel centre is the mean of its block's centres in world space
    centre_fine = affine @ np.array([2.5, 4.5, 0, 1])
    assert np.allclose(a2 @ np.array([1, 2, 0, 1]), centre_fine)
    same = store_grid(hu, seg, lesion, affine, 1)
    assert same[0] is hu and np.array_equal(same[2], lesion)
