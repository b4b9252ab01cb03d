"""chambon2022 Study 2 (text encoders by CheXpert@k): hand-computed scores, report selection, every extraction
method on the packaged MiniLM (and a CXR-BERT-like model-specific method), the random-init control, and the
Table 2 / Table 3 cells with their provenance placed in the paper's layout."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from medsynth.embedded import minilm_dir
from medsynth.errors import MedsynthError
from medsynth.manifest import CHEXPERT_LABELS
from medsynth.metrics.retrieval import cosine_matrix
from medsynth.models.loading import wrap_encoder
from medsynth.papers import chambon2022_text as T
from medsynth.report.published import load_published
from medsynth.report.render import side_by_side

A, B, C = "Atelectasis", "Cardiomegaly", "Consolidation"
# Row i's k=2 nearest other reports are NEIGHBOURS[i] (in that order); the diagonal is the highest value of every
# row, so a wrong self-exclusion changes the answer.
NEIGHBOURS = {0: [1, 4], 1: [2, 0], 2: [3, 1], 3: [0, 4], 4: [0, 2]}
DRAWN = [A, A, B, B, C]
POSITIVES = [[A], [A, B], [B], [B], [C, A]]


def _hand_similarity():
    sim = np.full((5, 5), 0.1)
    for i, (first, second) in NEIGHBOURS.items():
        sim[i, first], sim[i, second], sim[i, i] = 0.9, 0.8, 2.0
    return sim


def _selected(labels=DRAWN, positives=POSITIVES):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(labels))], "text": ["x"] * len(labels),
                         "label": labels, "positives": positives})


def test_chexpert_at_k_drawn_class_hand_computed():
    out = T.score(_hand_similarity(), _selected(), k=2, label_rule="sampled_class")
    # 0 (A) -> 1 {A,B} yes, 4 {C,A} yes: 1 | 1 (A) -> 2 {B} no, 0 {A} yes: 1/2 | 2 (B) -> 3 yes, 1 {A,B} yes: 1
    # 3 (B) -> 0 {A} no, 4 {C,A} no: 0 | 4 (C) -> 0 no, 2 no: 0
    np.testing.assert_allclose(out["per_report"], [1.0, 0.5, 1.0, 0.0, 0.0])
    assert out["per_class"] == pytest.approx({A: 0.75, B: 0.5, C: 0.0})
    assert list(out["per_class"]) == [B, C, A]  # CheXpert label order (Cardiomegaly, Consolidation, Atelectasis)
    assert out["macro"] == pytest.approx(1.25 / 3)
    assert out["class_counts"] == {A: 2, B: 2, C: 1} and out["k"] == 2 and out["n"] == 5


def test_chexpert_at_k_label_sets_hand_computed():
    out = T.score(_hand_similarity(), _selected(), k=2, label_rule="label_set")
    # sets {A} {A,B} {B} {B} {C,A}: 0 -> 1 yes, 4 yes: 1 | 1 -> 2 yes, 0 yes: 1 | 2 -> 3, 1: 1 | 3 -> 0 no, 4 no: 0
    # 4 -> 0 yes, 2 no: 1/2. A over reports 0, 1, 4; B over 1, 2, 3; C over 4.
    assert out["per_class"] == pytest.approx({A: 2.5 / 3, B: 2 / 3, C: 0.5})
    assert out["macro"] == pytest.approx((2.5 / 3 + 2 / 3 + 0.5) / 3)
    assert out["class_counts"] == {A: 3, B: 3, C: 1}
    with pytest.raises(MedsynthError, match="label_rule"):
        T.score(_hand_similarity(), _selected(), k=2, label_rule="majority")


def test_ties_share_credit_and_k_is_checked():
    flat = np.ones((4, 4))  # every report equally similar: the 3 others tie for the one place
    out = T.chexpert_at_k_drawn(flat, [A, B, A, B], [[A], [B], [A], [B]], k=1)
    # each report has 1 same-class report among its 3 tied others: 1/3 each, whatever the row order
    np.testing.assert_allclose(out["per_report"], [1 / 3] * 4)
    with pytest.raises(MedsynthError, match="k must be"):
        T.chexpert_at_k_drawn(flat, [A, B, A, B], [[A], [B], [A], [B]], k=4)


def _manifest():
    rows = [  # id, patient, impression, positives (1), uncertain (-1)
        ("r0", "p0", "Small left pleural effusion.", ["Pleural Effusion"], []),
        ("r1", "p1", "Effusion and enlarged heart.", ["Pleural Effusion", "Cardiomegaly"], []),
        ("r2", "p2", "Cardiomegaly.", ["Cardiomegaly"], []),
        ("r3", "p3", "Heart size is enlarged.", ["Cardiomegaly"], []),
        ("r4", "p4", "No acute disease.", [], []),                       # no positive label
        ("r5", "p5", "", ["Edema"], []),                                 # empty impression
        ("r6", "p2", "Cardiomegaly.", ["Cardiomegaly"], []),             # same patient, same text as r2
        ("r7", "p7", "Possible pneumothorax.", [], ["Pneumothorax"]),    # uncertain only: not a positive
    ]
    table = []
    for rid, pid, text, pos, unc in rows:
        labels = {c: (1.0 if c in pos else -1.0 if c in unc else np.nan) for c in CHEXPERT_LABELS}
        table.append({"id": rid, "patient_id": pid, "impression": text, **labels})
    return pd.DataFrame(table)


def test_select_reports_rarest_first_each_report_once():
    selected, summary = T.select_reports(_manifest(), "impression", per_class=5, seed=0)
    # Effusion (2 eligible) is rarer than Cardiomegaly (3: r1, r2, r3) and is drawn first, so r1 counts for it.
    assert dict(zip(selected.id, selected.label)) == {"r0": "Pleural Effusion", "r1": "Pleural Effusion",
                                                      "r2": "Cardiomegaly", "r3": "Cardiomegaly"}
    assert all(lab in pos for lab, pos in zip(selected.label, selected.positives))
    assert summary["excluded_empty_section"] == 1 and summary["excluded_duplicate_text"] == 1
    assert summary["excluded_no_positive_label"] == 2 and summary["eligible"] == 4 and summary["selected"] == 4
    one, _ = T.select_reports(_manifest(), "impression", per_class=1, seed=3)
    assert sorted(one.label) == ["Cardiomegaly", "Pleural Effusion"] and one.id.is_unique
    with pytest.raises(MedsynthError, match="lacks column"):
        T.select_reports(_manifest().drop(columns=["Edema"]), "impression", 5, 0)


def test_encoder_entries_check_names_and_extractions():
    got = T.encoder_entries({"encoders": [{"name": "MiniLM (offline)", "model": "minilm", "extractions": ["cls"]}]})
    assert got == {"minilm_offline": {"name": "MiniLM (offline)", "model": "minilm", "extractions": ["cls"],
                                      "trust_remote_code": False, "random_init": False}}
    with pytest.raises(MedsynthError, match="extraction 'tokens'"):
        T.encoder_entries({"encoders": [{"name": "x", "model": "minilm", "extractions": ["tokens"]}]})
    with pytest.raises(MedsynthError, match="already used"):
        T.encoder_entries({"encoders": [{"name": "A b", "model": "m", "extractions": ["cls"]},
                                        {"name": "a-B", "model": "m", "extractions": ["cls"]}]})


TEXTS = ["No acute cardiopulmonary abnormality.", "Large left pleural effusion with adjacent atelectasis.",
         "Cardiomegaly.", "Right upper lobe consolidation consistent with pneumonia, follow-up recommended.",
         "Small right apical pneumothorax."]
MINILM = {"name": "MiniLM (offline)", "model": "minilm", "trust_remote_code": False, "random_init": False,
          "extractions": ["cls", "mean", "pooler", "model_specific"]}


def test_every_extraction_on_minilm_matches_a_one_text_forward():
    """Batches sorted by length and padded to their longest text give each text the vectors it gets alone."""
    vectors, prov = T.embed_all(MINILM, TEXTS, max_length=64, batch_size=2, seed=0)
    assert set(vectors) == set(MINILM["extractions"])
    assert all(v.shape == (len(TEXTS), 384) and v.dtype == np.float32 for v in vectors.values())
    model = AutoModel.from_pretrained(str(minilm_dir())).eval()
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    for i, text in enumerate(TEXTS):
        with torch.no_grad():
            out = model(**tok([text], return_tensors="pt"))
        mean = out.last_hidden_state[0].mean(0)
        want = {"cls": out.last_hidden_state[0, 0], "mean": mean, "pooler": out.pooler_output[0],
                "model_specific": torch.nn.functional.normalize(mean, dim=-1)}  # the sentence-transformers recipe
        for ext, vec in want.items():
            np.testing.assert_allclose(vectors[ext][i], vec.numpy(), atol=2e-5, err_msg=f"{ext} of text {i}")
    assert prov["model"] == "embedded:minilm" and prov["encoder"] == "MiniLM (offline)"
    assert len(prov["weights_sha256"]) == 64 and prov["max_length"] == 64


class _ProjectingBert(BertModel):
    """Stands in for CXR-BERT-specialized's remote-code CXRBertModel: its own projected, normalised [CLS]."""

    def __init__(self, config):
        super().__init__(config)
        self.cls_projection_head = torch.nn.Linear(config.hidden_size, 8)

    def get_projected_text_embeddings(self, input_ids, attention_mask):
        cls = self(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return torch.nn.functional.normalize(self.cls_projection_head(cls), dim=-1)


def test_model_specific_uses_a_models_own_text_embedding(monkeypatch):
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = _ProjectingBert(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32)).eval()
    encoder = wrap_encoder(model, {"extraction": "cls", "use_attention_mask": True})
    monkeypatch.setattr(T, "build_encoder", lambda *a: (encoder, tok, {"encoder": "fake", "extraction": "cls"}))
    entry = {"name": "fake", "model": "fake", "extractions": ["cls", "mean", "model_specific"]}
    vectors, _ = T.embed_all(entry, TEXTS, max_length=32, batch_size=2, seed=0)
    assert vectors["cls"].shape == vectors["mean"].shape == (5, 16) and vectors["model_specific"].shape == (5, 8)
    with torch.no_grad():
        batch = tok([TEXTS[2]], return_tensors="pt")
        want = model.get_projected_text_embeddings(batch.input_ids, batch.attention_mask)[0].numpy()
    np.testing.assert_allclose(vectors["model_specific"][2], want, atol=1e-5)


# Five findings, each written in four ways that share almost no words with each other but share the carrier
# phrases of every class: a model that learned meaning separates them, one that only mixes random token vectors
# mostly cannot.
TOY = {
    "Pleural Effusion": ["fluid layering in the pleural space", "the costophrenic angle is blunted by fluid",
                         "a pleural effusion is present", "liquid collection around the lung base"],
    "Cardiomegaly": ["the heart is enlarged", "cardiac silhouette is increased in size",
                     "cardiomegaly is seen", "heart size is bigger than normal"],
    "Pneumothorax": ["air is present in the pleural space", "the lung has collapsed with a visible pleural line",
                     "pneumothorax is seen", "a collapsed lung"],
    "Fracture": ["a broken rib is seen", "rib fracture is present", "the clavicle is broken",
                 "there is a fractured bone"],
    "Support Devices": ["an endotracheal tube is in place", "a pacemaker is present", "central venous catheter tip",
                        "a nasogastric tube is seen"],
}


def test_random_init_control_scores_below_the_trained_encoder():
    labels = [c for c, texts in TOY.items() for _ in texts]
    texts = [f"impression: {t}." for c in TOY for t in TOY[c]]
    selected = _selected(labels, [[c] for c in labels])
    scores = {}
    for random_init in (False, True):
        entry = {**MINILM, "random_init": random_init, "extractions": ["mean"]}
        vectors, prov = T.embed_all(entry, texts, max_length=32, batch_size=8, seed=0)
        scores[random_init] = T.score(cosine_matrix(vectors["mean"]), selected, k=3, label_rule="sampled_class")
        if random_init:
            assert prov["weights_sha256"] is None and prov["weights"].startswith("random init (seed 0)")
    trained, control = scores[False]["macro"], scores[True]["macro"]
    chance = 3 / 19  # 3 same-class reports among the 19 others
    assert trained > control + 0.2, (trained, control)
    assert trained > 2 * chance


def _records():
    selection = {"section": "impression"}
    per_class = {A: 0.5, B: 0.25}

    def rec(macro, prov, method):
        result = {"macro": macro, "per_class": per_class, "class_counts": {A: 3, B: 4}, "k": 10, "n": 7}
        return T.result_record(result, prov, method=method, dataset="openi_reports", label_rule="sampled_class",
                               seed=0, scale="ci", summary=selection)

    sha = "ab" * 32
    out = [rec(v, {"encoder": "CLIP text encoder", "model": "openai/clip-vit-large-patch14", "weights": "pretrained",
                   "weights_sha256": sha, "extraction": ext}, f"CLIP [{ext}], cosine")
           for ext, v in (("cls", 0.1), ("pooler", 0.4))]
    out.append(rec(0.3, {"encoder": "Random BERT (control)", "model": "embedded:minilm", "weights": "random init",
                         "weights_sha256": None, "extraction": "mean"}, "Random BERT [mean], cosine"))
    out.append(rec(0.2, {"model": "bag_of_words", "baseline": "bag_of_words"}, "Bag of words (IoU)"))
    return out


def test_cells_carry_provenance_and_fit_the_papers_tables():
    table3_columns = next(t for t in load_published("chambon2022")["tables"] if t["id"] == "table3")["columns"]
    cells = T.table_cells(_records(), table3_columns)
    t2 = {(c["row"], c["column"]): c for c in cells if c["table"] == "table2"}
    assert set(t2) == {("CLIP text encoder", "CLS"), ("CLIP text encoder", "pooler"),
                       ("Random BERT (control)", "mean"), ("Bag of words (IoU)", "model specific")}
    clip = t2[("CLIP text encoder", "pooler")]
    assert clip["value"] == pytest.approx(40.0)  # percent, as printed in the paper
    assert {"encoder", "weights", "weights_sha256", "n", "k", "dataset", "method", "seed"} <= set(clip["provenance"])
    p = clip["provenance"]
    assert (p["encoder"], p["weights_sha256"], p["n"], p["k"], p["extraction"]) == (
        "openai/clip-vit-large-patch14", "ab" * 32, 7, 10, "pooler")
    assert t2[("Random BERT (control)", "mean")]["provenance"]["weights"] == "random init"
    # Table 3: CLIP at its best extraction (pooler) under the paper's "CLIP" column; Base = bag of words; the
    # control has no column there (the per-class figure shows it); n per class is that class's report count.
    t3 = {(c["row"], c["column"]): c for c in cells if c["table"] == "table3"}
    assert set(t3) == {(r, col) for r in (A, B, "Macro") for col in ("CLIP", "Base")}
    assert t3[(A, "CLIP")]["value"] == pytest.approx(50.0) and t3[("Macro", "CLIP")]["value"] == pytest.approx(40.0)
    assert t3[(B, "Base")]["provenance"]["n"] == 4 and t3[("Macro", "Base")]["provenance"]["n"] == 7
    tables = {t.id: t for t in side_by_side("chambon2022", cells)}  # every cell lands in a column of the paper
    clip_row = tables["table2"].rows["CLIP text encoder"]
    assert clip_row[2].measured == pytest.approx(40.0) and clip_row[2].published == 52.9
    assert tables["table3"].rows["Macro"][0].published == 41.5


def test_per_class_frame_keeps_each_encoders_best_extraction():
    frame = T.per_class_frame(_records())
    assert list(frame.columns) == ["CLIP text encoder [pooler]", "Random BERT (control) [mean]",
                                   "Bag of words (IoU)"]
    assert list(frame.index) == [B, A, "Macro"]
    assert frame.loc["Macro", "CLIP text encoder [pooler]"] == pytest.approx(40.0)


def test_baselines_and_tsne():
    texts = ["small pleural effusion", "large pleural effusion", "heart enlarged", "heart is enlarged"]
    bow = T.baseline_similarity("bag_of_words", texts)
    assert bow[0, 1] == pytest.approx(2 / 4)
    tfidf = T.baseline_similarity("tfidf", texts)
    assert tfidf.shape == (4, 4) and np.allclose(np.diag(tfidf), 1) and tfidf[0, 1] > tfidf[0, 2] == 0
    with pytest.raises(MedsynthError, match="unknown baseline"):
        T.baseline_similarity("bm25", texts)
    xy = T.tsne_coordinates(np.random.default_rng(0).normal(size=(12, 5)), seed=0)
    assert xy.shape == (12, 2) and np.array_equal(xy, T.tsne_coordinates(
        np.random.default_rng(0).normal(size=(12, 5)), seed=0))


def test_paper_scale_config_validates_and_names_the_papers_rows(repo, tmp_path, monkeypatch):
    """config.yaml + config/mimic_cxr.yaml + config/chambon2022_paper.yaml: the documented paper-scale stack."""
    monkeypatch.setenv("MEDSYNTH_PSEUDONYM_KEY", "test-secret")  # real data refuses the public demo key
    import yaml
    from snakemake.utils import update_config

    from medsynth.workflow import validate_config

    merged = {}
    for f in ("config.yaml", "config/mimic_cxr.yaml", "config/chambon2022_paper.yaml"):
        update_config(merged, yaml.safe_load((repo / f).read_text()))
    merged["datasets"]["mimic_cxr"]["root"] = str(tmp_path)
    validate_config(merged, repo / "schemas" / "config.schema.yaml")
    study = merged["chambon2022"]["text_study"]
    entries = {e["name"]: e for e in T.encoder_entries(study).values()}
    table2 = next(t for t in load_published("chambon2022")["tables"] if t["id"] == "table2")
    assert set(table2["rows"]) <= set(entries)  # every paper row gets measured cells
    assert [n for n, e in entries.items() if e["trust_remote_code"]] == ["CXR-BERT-specialized"]  # opt-in, only it
    assert study["dataset"] == "mimic_cxr" and study["k"] == 10 and study["per_class"] == 50
