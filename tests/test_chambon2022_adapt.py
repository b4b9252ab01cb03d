"""chambon2022 Studies 3-6: strategy checks, class references, Table 5 metrics and the Table 4/5 report cells."""
from __future__ import annotations

import pandas as pd
import pytest

from medsynth.errors import MedsynthError
from medsynth.papers import chambon2022_adapt as C
from medsynth.report.render import side_by_side

def _sets(*names):
    return {"prompt_sets": {"adapt": {"prompts": {n: f"prompt {n}" for n in names}}}}


MODELS = {"base": _sets("negative", "effusion"), "ti": _sets("style", "negative", "effusion"),
          "prior": _sets("negative", "effusion"), "noprior": _sets("negative", "effusion")}
STRATEGIES = [
    {"model": "base", "table4": "Stable Diffusion", "table5": "Original model"},
    {"model": "ti", "table4": "Token embedding (object, radiology)", "table5": "Textual inversion"},
    {"model": "noprior", "table4": "U-Net trained on no findings", "table5": "U-Net, no prior"},
    {"model": "prior", "table4": "U-Net with prior preservation", "table5": "U-Net, with prior"},
    {"model": "doc", "table4": "Document-level projection", "table5": "Textual projection (document)",
     "omitted": "strategy projection_distill not available"},
]


def _record(value, backbone="inception-random"):
    return {"value": value, "n": 4, "backbone": backbone, "weights_sha256": "ab" * 32, "resize_mode": "bicubic32",
            "definition": "Frechet distance", "extra": {"n_reference": 9}}


def _eval(fids, neg, pos):
    sets = {name: {"prompt": name, "n": 4, "reference": "No Finding" if name != "effusion" else "Pleural Effusion",
                   "fid": _record(f), "domain": _record(f / 10, "classifier:small_cnn")}
            for name, f in fids.items()}
    return {"sets": sets, "table5": C.table5_metrics(neg, pos), "sampling": {"ddim_steps": 4},
            "scorer": {"name": "clf", "backbone": "classifier:small_cnn", "weights_sha256": "cd" * 32,
                       "label": "Pleural Effusion"}}


def _evals():
    return {"base": _eval({"negative": 10.0, "effusion": 12.0}, [0.4, 0.6], [0.5, 0.5]),
            "ti": _eval({"negative": 9.0, "effusion": 11.0, "style": 8.0}, [0.1, 0.2], [0.15, 0.9]),
            "noprior": _eval({"negative": 5.0, "effusion": 3.0}, [0.6, 0.6], [0.4, 0.4]),
            "prior": _eval({"negative": 7.0, "effusion": 6.0}, [0.1, 0.2], [0.8, 0.9])}


def test_strategies_are_checked_and_omitted_ones_kept_apart():
    active, omitted = C.study_strategies({"strategies": STRATEGIES}, MODELS)
    assert [e["model"] for e in active] == ["base", "ti", "noprior", "prior"] and omitted[0]["model"] == "doc"
    with pytest.raises(MedsynthError, match="not a models: entry"):
        C.study_strategies({"strategies": [{"model": "nope"}]}, MODELS)
    for lacking in (_sets("negative"), {"prompt_sets": {"negative": {}, "effusion": {}}},
                    {"prompt_sets": {"adapt": {"prompts": ["a", "b"]}}}):  # unnamed prompts name no role
        with pytest.raises(MedsynthError, match="needs a prompt set 'adapt'"):
            C.study_strategies({"strategies": [{"model": "x"}]}, {"x": lacking})
    with pytest.raises(MedsynthError, match="two strategies fill table5"):
        C.study_strategies({"strategies": [{"model": "base", "table5": "A"}, {"model": "ti", "table5": "A"}]}, MODELS)
    assert C.prompt_names_of(MODELS["ti"]) == ["negative", "effusion", "style"]  # Table 4's column order


def test_class_rows_take_positives_of_the_splits():
    df = pd.DataFrame({"split": ["train", "val", "test", "train"], "image": ["a", "b", "c", ""],
                       "Pleural Effusion": [1.0, -1.0, 1.0, 1.0]})
    assert C.class_rows(df, "Pleural Effusion", ["train", "val", "test"])["image"].tolist() == ["a", "c"]
    with pytest.raises(MedsynthError, match="at least 2"):
        C.class_rows(df, "Pleural Effusion", ["train"])


def test_table5_metrics_truth_is_the_prompt():
    m = C.table5_metrics([0.1, 0.2, 0.6], [0.7, 0.9, 0.4])
    assert m["n"] == 6 and m["positives"] == 3
    assert m["auc"] == pytest.approx(8 / 9) and m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    flat = C.table5_metrics([0.1, 0.1], [0.1, 0.1])
    assert flat["f1"] == 0 and flat["precision"] == 0 and flat["auc"] == 0.5
    with pytest.raises(MedsynthError, match="both prompts"):
        C.table5_metrics([], [0.5])


def test_cells_fill_the_published_layout_with_provenance_and_reasons():
    active, omitted = C.study_strategies({"strategies": STRATEGIES}, MODELS)
    cells = C.table_cells(_evals(), active, omitted, dataset="phantom_cxr", scale="demo")
    t4 = {(c["row"], c["column"]): c for c in cells if c["table"] == "table4"}
    assert t4[("Stable Diffusion", "A photo of a lung xray")]["value"] == 10.0
    assert t4[("Token embedding (object, radiology)", "A photo in the style of a lung xray")]["value"] == 8.0
    assert t4[("U-Net trained on no findings", "... with a visible pleural effusion")]["provenance"]["reference"] == \
        "Pleural Effusion"
    dom = {(c["row"], c["column"]): c["value"] for c in cells if c["table"] == C.DOMAIN_TABLE}
    assert dom[("Stable Diffusion", "A photo of a lung xray")] == 1.0
    t5 = {(c["row"], c["column"]): c for c in cells if c["table"] == "table5"}
    assert t5[("U-Net, with prior", "AUC")]["value"] == 1.0 and t5[("U-Net, no prior", "Recall")]["value"] == 0.0
    assert t5[("U-Net, with prior", "AUC")]["provenance"]["stand_in"] is True
    doc = t4[("Document-level projection", "A photo of a lung xray")]
    assert doc["value"] is None and "projection_distill" in doc["provenance"]["method"]
    assert t5[("Textual projection (document)", "AUC")]["value"] is None
    tables = {t.id: t for t in side_by_side("chambon2022", cells)}  # every cell lands in a published column
    assert tables["table5"].rows["U-Net, with prior"][0].measured == 1.0
    assert tables["table5"].rows["U-Net, with prior"][0].published == 0.984
    assert tables[C.DOMAIN_TABLE].rows["Stable Diffusion"][0].measured == 1.0


def test_findings_compare_prior_and_fid_ranking():
    active, _ = C.study_strategies({"strategies": STRATEGIES}, MODELS)
    f = C.findings(_evals(), active)
    assert f["prior_beats_no_prior_auc"] is True and f["prior_beats_original_auc"] is True
    # lowest effusion FID (U-Net no findings) is not the best classifier AUC (prior): FID misses the abnormality
    assert f["best_effusion_fid"] == "U-Net trained on no findings" and f["best_table5_auc"] == "U-Net, with prior"
    assert f["fid_ranks_like_auc"] is False
