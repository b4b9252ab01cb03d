"""Dataset adapters on tiny copies of each real layout (tests/fixtures_datasets.py) and on the embedded sources."""
from __future__ import annotations

import copy
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fixtures_datasets import (
    CHEXPERT_ROWS, COVID_CLASSES, MIMIC_LAYOUT, make_aiib23, make_chexpert, make_covid, make_mimic, make_openi,
)
from medsynth.adapters import AdapterContext, build_manifest
from medsynth.errors import MedsynthError
from medsynth.ids import pseudonym
from medsynth.manifest import CHEXPERT_LABELS, REQUIRED_COLUMNS

KEY = b"test-key"


def ctx_for(adapter: str, root: Path | None, tmp_path: Path, key: bytes = KEY, **cfg) -> AdapterContext:
    if root is not None:
        cfg["root"] = str(root)
    return AdapterContext(name=adapter, adapter=adapter, cfg=cfg, key=key, results=tmp_path / "results")


def check_common(df: pd.DataFrame, raw_ids: list[str]) -> None:
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == REQUIRED_COLUMNS
    assert df["id"].is_unique
    assert set(df["split"]) <= {"train", "val", "test"}
    # raw identifiers never appear in a manifest column except inside the source paths
    text = df.drop(columns=[c for c in ("source", "mask_source") if c in df]).astype(str).to_csv()
    for raw in raw_ids:
        assert raw not in text, raw
    # one split per patient
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()


# ---------------------------------------------------------------- MIMIC-CXR
def test_mimic_jpg_manifest(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    df = build_manifest(ctx_for("mimic_cxr", root, tmp_path))
    n_images = sum(len(images) for studies in MIMIC_LAYOUT.values() for _, images in studies)
    assert len(df) == n_images
    check_common(df, ["10000032", "10000764", "11000123", "50000001", "d-0001"])
    first = df.iloc[0]
    assert first["id"] == pseudonym(KEY, "mimic_cxr/image", "d-0001")
    assert first["patient_id"] == pseudonym(KEY, "mimic_cxr/patient", "10000032")
    assert Path(first["source"]).is_absolute()
    assert first["source"].endswith("files/p10/p10000032/s50000001/d-0001.jpg")
    # official split file: validate -> val, per patient
    assert df.loc[df.patient_id == pseudonym(KEY, "mimic_cxr/patient", "10000764"), "split"].tolist() == ["val"]
    assert df.loc[df.patient_id == pseudonym(KEY, "mimic_cxr/patient", "11000123"), "split"].unique().tolist() == ["test"]
    assert df["view"].tolist() == ["PA", "LATERAL", "AP", "AP", "PA", "LATERAL", ""]
    assert first["findings"].startswith("There is no focal consolidation, pleural effusion or pneumothorax. Bilateral")
    assert first["impression"] == "No acute cardiopulmonary process."
    assert first["indication"] == "___F with new onset ascites // eval for infection"
    assert first["prompt"] == f"FINDINGS: {first['findings']} IMPRESSION: {first['impression']}"
    effusion = df.iloc[3]
    assert effusion["findings"] == "Moderate right pleural effusion with adjacent atelectasis."
    assert effusion["Pleural Effusion"] == 1.0 and effusion["Atelectasis"] == -1.0 and math.isnan(effusion["Edema"])
    empty_report = df.iloc[2]
    assert empty_report["prompt"] == "" and empty_report["findings"] == ""
    assert df[CHEXPERT_LABELS].dtypes.map(lambda d: d.kind == "f").all()


def test_mimic_ids_stable_and_keyed(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    a = build_manifest(ctx_for("mimic_cxr", root, tmp_path))
    b = build_manifest(ctx_for("mimic_cxr", root, tmp_path))
    c = build_manifest(ctx_for("mimic_cxr", root, tmp_path, key=b"other-key"))
    assert a["id"].tolist() == b["id"].tolist()
    assert not set(a["id"]) & set(c["id"])


def test_mimic_dicom_without_split_or_labels(tmp_path):
    root = make_mimic(tmp_path / "mimic", fmt="dicom", split_file=False, labels_file=False, gz=False,
                      reports_in_subfolder=True)
    df = build_manifest(ctx_for("mimic_cxr", root, tmp_path, image_format="dicom"))
    assert all(s.endswith(".dcm") for s in df["source"])
    assert df[CHEXPERT_LABELS].isna().all().all()
    check_common(df, ["10000032", "MRN-FAKE-0001", "Doe^Jane"])
    assert df.iloc[5]["impression"] == "Small left apical pneumothorax, new since prior."
    assert df.iloc[5]["findings"] == ""  # the wet read is not the findings section


def test_mimic_missing_files(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    (root / "files/p11/p11000123/s50000003/d-0005.jpg").unlink()
    df = build_manifest(ctx_for("mimic_cxr", root, tmp_path))  # a missing image is a reject later, not an abort
    assert len(df) == 7 and sum(not Path(s).is_file() for s in df["source"]) == 1
    for jpg in (root / "files").rglob("*.jpg"):
        jpg.unlink()
    with pytest.raises(MedsynthError, match=r"none of the 7 images .* check root and image_format"):
        build_manifest(ctx_for("mimic_cxr", root, tmp_path))
    root2 = make_mimic(tmp_path / "mimic2")
    (root2 / "files/p10/p10000764/s50000002.txt").unlink()
    with pytest.raises(MedsynthError, match="reports .* missing"):
        build_manifest(ctx_for("mimic_cxr", root2, tmp_path))
    (root2 / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    with pytest.raises(MedsynthError, match="metadata.csv"):
        build_manifest(ctx_for("mimic_cxr", root2, tmp_path))


def test_root_missing_is_clear_error(tmp_path):
    with pytest.raises(MedsynthError, match="root is not set"):
        build_manifest(ctx_for("mimic_cxr", None, tmp_path))
    with pytest.raises(MedsynthError, match="does not exist"):
        build_manifest(ctx_for("chexpert", tmp_path / "nope", tmp_path))


# ---------------------------------------------------------------- CheXpert
def test_chexpert_manifest(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    make_chexpert(root)
    df = build_manifest(ctx_for("chexpert", root, tmp_path))
    assert len(df) == len(CHEXPERT_ROWS)
    check_common(df, ["patient00001", "patient64541"])
    assert df["patient_id"].iloc[1] == df["patient_id"].iloc[2] == pseudonym(KEY, "chexpert/patient", "patient00002")
    assert df["split"].iloc[4] == "val"
    assert set(df["split"].iloc[:4]) <= {"train", "test"}
    assert df["view"].tolist() == ["AP", "AP", "LATERAL", "PA", "AP"]
    assert df["Support Devices"].iloc[0] == 1.0 and df["Cardiomegaly"].iloc[1] == -1.0
    assert df["prompt"].iloc[0] == ("Chest X-ray : Gender: Female. Patient age: 68. View: frontal. Projection: AP. "
                                    "No finding. Support Devices.")
    assert "age" not in df["prompt"].iloc[3].lower()  # age 0 is CheXpert's missing code
    assert all(Path(s).is_file() for s in df["source"])


def test_chexpert_missing_image(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    make_chexpert(root)
    (root / "valid/patient64541/study1/view1_frontal.jpg").unlink()
    df = build_manifest(ctx_for("chexpert", root, tmp_path))  # kept: preprocessing rejects it ('missing file')
    assert len(df) == 5 and sum(not Path(s).is_file() for s in df["source"]) == 1


# ---------------------------------------------------------------- OpenI
def test_openi_manifest(tmp_path):
    root = make_openi(tmp_path / "openi")
    df = build_manifest(ctx_for("openi", root, tmp_path))
    assert len(df) == 4  # report 4 has no image
    check_common(df, ["CXR1_1_IM-0001-3001", "CXR2"])
    assert df["patient_id"].iloc[0] == df["patient_id"].iloc[1] == pseudonym(KEY, "openi/patient", "CXR1")
    assert df["split"].iloc[0] == df["split"].iloc[1]
    assert df["No Finding"].iloc[0] == 1.0
    assert df["Cardiomegaly"].iloc[2] == -1.0 and df["Lung Opacity"].iloc[2] == 1.0 and df["No Finding"].iloc[2] == 0
    assert df["prompt"].iloc[2] == ("FINDINGS: Borderline cardiomegaly. Left basilar opacity. "
                                    "IMPRESSION: Possible left lower lobe pneumonia.")
    assert df["prompt"].iloc[3] == "" and df[CHEXPERT_LABELS].iloc[3].isna().all()
    # views from the IU X-ray metadata torchxrayvision ships: a real image id has a known view
    assert set(df["view"]) <= {"PA", "AP", "LATERAL", "FRONTAL", ""}
    assert df["view"].iloc[0] != ""


def test_openi_missing_png(tmp_path):
    root = make_openi(tmp_path / "openi", skip_image="CXR2_IM-0652-1001")
    df = build_manifest(ctx_for("openi", root, tmp_path))  # kept: preprocessing rejects it ('missing file')
    assert [Path(s).name for s in df["source"] if not Path(s).is_file()] == ["CXR2_IM-0652-1001.png"]


# ---------------------------------------------------------------- COVID-19 Radiography
def test_covid_manifest(tmp_path):
    root = make_covid(tmp_path / "covid")
    df = build_manifest(ctx_for("covid_radiography", root, tmp_path))
    assert len(df) == sum(COVID_CLASSES.values())
    check_common(df, [])
    prompts = dict(zip(df["class_name"], df["prompt"]))
    assert prompts == {"COVID": "COVID 19", "Normal": "Normal chest scan", "Lung_Opacity": "Lung Opacity",
                       "Viral Pneumonia": "Viral Pneumonia"}
    for src, mask in zip(df["source"], df["mask_source"]):
        assert Path(mask).is_file() and Path(mask).name == Path(src).name and "/masks/" in mask
    normal = df[df.class_name == "Normal"]
    assert (normal["No Finding"] == 1).all() and normal["Pneumonia"].isna().all()
    assert (df.loc[df.class_name == "Viral Pneumonia", "Pneumonia"] == 1).all()
    assert (df.loc[df.class_name != "Normal", "No Finding"] == 0).all()


def test_covid_missing_mask(tmp_path):
    root = make_covid(tmp_path / "covid", drop_mask="Normal-2.png")
    with pytest.raises(MedsynthError, match="1 images have no lung mask .*Normal-2.png"):
        build_manifest(ctx_for("covid_radiography", root, tmp_path))
    with pytest.raises(MedsynthError, match="no class folders"):
        build_manifest(ctx_for("covid_radiography", tmp_path, tmp_path / "x"))


# ---------------------------------------------------------------- AIIB23
def test_aiib23_manifest(tmp_path):
    root = make_aiib23(tmp_path / "aiib")
    df = build_manifest(ctx_for("aiib23", root, tmp_path))
    assert len(df) == 4
    check_common(df, [])
    by = dict(zip([Path(s).name for s in df["source"]], df.to_dict("records")))
    r4 = by["AIIB23_4.nii.gz"]
    assert r4["split"] == "train" and by["AIIB23_9.nii.gz"]["split"] == "val"
    assert r4["mask_source"].endswith("train/gtlung/AIIB23_4.nii.gz")
    assert r4["prompt"] == ("Lung CT scan : DIAGNOSIS is IPF, State of (Dead/Alive) within one year is Alive, "
                            "Patient age: 71. Gender: Male. SMOKING HISTORY is Ex, Stopped smoking 3650 days ago. "
                            "Occupational exposure present.")
    r7 = by["AIIB23_7.nii.gz"]["prompt"]
    assert "Pack-years" not in r7 and "Stopped smoking" not in r7  # 0 is a sentinel in DGM-VLC's rules
    assert "CTD diagnosis: RA." in r7 and "Environmental risk factors present." in r7
    assert by["AIIB23_11.nii.gz"]["prompt"] == "" and not by["AIIB23_11.nii.gz"]["has_clinical"]
    assert r4["AGE"] == 71 and "Mapping ID" not in df.columns


def test_aiib23_errors(tmp_path):
    root = make_aiib23(tmp_path / "a", drop_mask="AIIB23_7")
    with pytest.raises(MedsynthError, match="1 CT volumes have no mask"):
        build_manifest(ctx_for("aiib23", root, tmp_path))
    root = make_aiib23(tmp_path / "b", clinical=False)
    (root / "data_info.xlsx").write_bytes(b"")
    with pytest.raises(MedsynthError, match="no clinical table .*data_info.xlsx found: save it as CSV"):
        build_manifest(ctx_for("aiib23", root, tmp_path))
    root = make_aiib23(tmp_path / "c", layout={"": ["AIIB23_4", "AIIB23_7", "AIIB23_9"]}, mask_dir="gt")
    df = build_manifest(ctx_for("aiib23", root, tmp_path))  # flat layout, challenge 'gt' folder: hashed split
    assert len(df) == 3 and df["has_clinical"].all() and all("/gt/" in m for m in df["mask_source"])


# ---------------------------------------------------------------- embedded sources
def test_openi_reports_embedded(tmp_path):
    df = build_manifest(ctx_for("openi_reports", None, tmp_path))
    assert len(df) == 3955
    check_common(df, [])
    first = df[df.source.str.endswith("ecgen-radiology/1.xml")].iloc[0]
    assert first["indication"] == "Positive TB test"
    assert first["impression"] == "Normal chest x-XXXX."
    assert first["image_ids"] == "CXR1_1_IM-0001-3001;CXR1_1_IM-0001-4001"
    assert first["No Finding"] == 1.0
    assert (df["Cardiomegaly"] == 1).sum() > 300 and (df["Cardiomegaly"] == -1).sum() > 20
    assert (df["prompt"] == "").sum() < 50  # reports with neither section: rejected later by the table shard


def test_v7labs_masks_embedded(tmp_path):
    df = build_manifest(ctx_for("v7labs_lung_masks", None, tmp_path))
    assert len(df) == 517
    check_common(df, [])
    zpath, member = df["source"].iloc[0].removeprefix("zip://").split("::")
    with zipfile.ZipFile(zpath) as zf:
        assert member in zf.namelist()
    assert (df["source"] == df["mask_source"]).all()


def test_chexpert_table_embedded(tmp_path):
    df = build_manifest(ctx_for("chexpert_table", None, tmp_path))
    assert len(df) == 223_414
    assert df["id"].is_unique and (df["prompt"] == "").all()
    assert set(df["view"]) == {"AP", "PA", "LATERAL"}
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()
    assert df["Sex"].iloc[0] == "Female" and df["Age"].iloc[0] == 68


# ---------------------------------------------------------------- example configs
@pytest.mark.parametrize("name", ["mimic_cxr", "chexpert", "openi", "covid_radiography", "aiib23"])
def test_example_configs_validate(repo, tmp_path, name, monkeypatch):
    from medsynth.workflow import validate_config

    monkeypatch.setenv("MEDSYNTH_PSEUDONYM_KEY", "test-secret")  # real data refuses the public demo key
    base = yaml.safe_load((repo / "config.yaml").read_text())
    extra = yaml.safe_load((repo / "config" / f"{name}.yaml").read_text())
    assert list(extra["datasets"]) == [name] and extra["datasets"][name]["adapter"] == name
    root = tmp_path / name
    root.mkdir()
    extra["datasets"][name]["root"] = str(root)
    merged = copy.deepcopy(base)
    assert "scale" not in extra  # a dataset overlay adds data; paper scale comes with a paper config
    merged["datasets"].update(extra["datasets"])
    validate_config(merged, repo / "schemas" / "config.schema.yaml")
    extra["datasets"][name]["root"] = str(tmp_path / "absent")
    merged["datasets"].update(extra["datasets"])
    with pytest.raises(MedsynthError, match=f"datasets.{name}.root"):
        validate_config(merged, repo / "schemas" / "config.schema.yaml")


def test_paper_config_choksi2025_openi_validates(repo, tmp_path, monkeypatch):
    """config.yaml + config/openi.yaml + config/choksi2025_openi.yaml: the documented paper-scale stack."""
    from snakemake.utils import update_config

    monkeypatch.setenv("MEDSYNTH_PSEUDONYM_KEY", "test-secret")
    from medsynth.workflow import validate_config

    merged = {}
    for f in ("config.yaml", "config/openi.yaml", "config/choksi2025_openi.yaml"):
        update_config(merged, yaml.safe_load((repo / f).read_text()))
    merged["datasets"]["openi"]["root"] = str(tmp_path)
    validate_config(merged, repo / "schemas" / "config.schema.yaml")
    m = merged["models"]["choksi2025"]
    assert m["dataset"] == "openi" and m["image_size"] == 256 and m["vae"]["latent_channels"] == 8
    assert m["unet"]["block_out_channels"][0] == 48 and m["diffusion"]["train"]["cfg_dropout"] == 0.1
