"""chen2024: anatomy-pathology vocabularies, prompt writing, table cells."""
import pandas as pd
import pytest

from medsynth.anatomy_pathology import (mine_vocabulary, positive_words, report_texts, template_findings, word_pairs,
                                        write_prompts)
from medsynth.errors import MedsynthError
from medsynth.papers.chen2024 import table1_cells, table2_cells

REPORTS = ["Moderate right pleural effusion. Heart size is enlarged with cardiomegaly.",
           "Left lower lobe opacity, likely consolidation. No pneumothorax.",
           "Small left pleural effusion and basal atelectasis of the lung.",
           "No pleural effusion or pneumothorax. The heart is normal."]


def test_negated_findings_are_not_counted():
    words = positive_words("No pleural effusion or pneumothorax. Heart is enlarged.")
    assert "effusion" not in words and "pneumothorax" not in words and "heart" in words and "enlarged" in words


def test_vocabulary_split_and_counts():
    vocab = mine_vocabulary(REPORTS, top_k=100, n_anatomy=5, n_pathology=3)
    ana = vocab[vocab["category"] == "anatomy"]
    pat = vocab[vocab["category"] == "pathology"]
    assert len(ana) <= 5 and len(pat) == 3
    counts = dict(zip(vocab["word"], vocab["count"]))
    assert counts["pleural"] == 2 and counts["effusion"] == 2     # the negated 4th report does not count
    assert "moderate" not in ana["word"].tolist() and "the" not in counts
    assert pat["count"].is_monotonic_decreasing
    with pytest.raises(MedsynthError, match="no report text"):
        mine_vocabulary(["", "No."])
    df = pd.DataFrame({"findings": ["a", None], "impression": ["b", "c"]})
    assert report_texts(df) == ["a b", " c"]


def test_word_pairs_are_seeded_and_prompts_use_their_words():
    vocab = mine_vocabulary(REPORTS, top_k=100)
    a, b = word_pairs(vocab, 3, 2, 2, seed=1), word_pairs(vocab, 3, 2, 2, seed=1)
    assert a == b and all(len(p["anatomy"]) == 2 and len(p["pathology"]) == 2 for p in a)
    prompts = write_prompts(a, "template")
    assert prompts["uses_all_words"].all() and prompts["writer"].eq("template").all()
    assert template_findings(["heart", "diaphragm"], ["effusion", "opacity"]) == \
        "Effusion and opacity observed in the region of the heart and diaphragm."
    with pytest.raises(MedsynthError, match="unknown prompt writer"):
        write_prompts(a, "gpt")


def test_llm_writer_runs_a_causal_lm(tmp_path):
    from medsynth.models.llm import load_causal_lm

    model, tok, info = load_causal_lm({"name": "random:tiny", "hidden_size": 16, "layers": 1, "heads": 2},
                                      texts=REPORTS)
    assert info["weights_sha256"] is None and "random" in info["source"]
    out = write_prompts([{"anatomy": ["heart"], "pathology": ["effusion"]}], "llm", (model, tok), max_new_tokens=5)
    assert out["writer"].tolist() == ["llm"] and isinstance(out["prompt"].iloc[0], str)


def test_table_cells_carry_provenance():
    prov = {"dataset": "phantom_cxr", "split": "val+test", "model": "chen2024", "scale": "ci", "seed": 0}
    fid = {"fid": {"metric": "fid", "value": 12.5, "std": None, "n": 6, "backbone": "inception-random",
                   "weights_sha256": "ab" * 32, "definition": "Frechet distance"}}
    cells = table1_cells(fid, {"niqe": {"mean": 6.1, "std": 0.4, "n": 6, "definition": "NIQE"}}, prov)
    assert [c["column"] for c in cells] == ["MIMIC FID", "MIMIC NIQE"]
    assert cells[0]["value"] == 12.5 and cells[0]["provenance"]["stand_in"] and cells[1]["value"] == 6.1
    small = table1_cells(fid, {"niqe": {"mean": None, "std": None, "n": 0, "not_computed": "too small"}}, prov)[1]
    assert small["value"] is None and small["provenance"]["method"] == "not computed: too small"
    with pytest.raises(MedsynthError, match="no 'niqe'"):
        table1_cells(fid, {}, prov)
    ev = {"split": "val+test", "n": 5, "n_train": 9, "labels": ["Pleural Effusion"],
          "per_label": {"macro": {"accuracy": 0.8, "auc": 0.75, "auc_labels": 1}}}
    t2 = table2_cells({"real": ev, "synthetic": {**ev, "per_label": {"macro": {"accuracy": 0.6, "auc": None}}}},
                      {k: v for k, v in prov.items() if k != "split"})
    by = {(c["row"], c["column"]): c["value"] for c in t2}
    assert by[("Trained on real images", "Pathology AUC")] == pytest.approx(75.0)
    assert by[("Trained on vq_ar synthetic images", "Pathology AUC")] is None
    assert by[("Trained on real images", "Anatomy AUC")] is None


def test_key_patches_find_the_patch_that_carries_the_word():
    import numpy as np

    from medsynth.keypatches import key_patches

    rng = np.random.default_rng(0)
    feats = rng.normal(0, 0.1, (6, 4, 4, 3))
    reports = ["right pleural effusion", "clear lungs", "pleural effusion", "clear", "effusion", "heart"]
    for i in (0, 2, 4):
        feats[i, 3, 1] += [5.0, 0, 0]          # the "effusion" images share a bright patch at (3, 1)
    codes = np.arange(6 * 16).reshape(6, 4, 4)
    vocab = pd.DataFrame({"word": ["effusion", "lungs"], "category": ["pathology", "anatomy"], "count": [3, 1]})
    kp = key_patches(feats, codes, reports, vocab, top=3)
    eff = kp[kp["word"] == "effusion"]
    assert len(eff) == 3 and set(eff["image"]) == {0, 2, 4}
    assert (eff["row"] == 3).all() and (eff["col"] == 1).all() and eff["similarity"].gt(0.9).all()
    assert eff["code"].tolist() == [codes[i, 3, 1] for i in eff["image"]]


def test_key_patches_contrast_each_position_not_the_brightest_patch_anywhere():
    """Every film has a brighter patch at (0, 2) (anatomy every report shares); the word's images differ from the
    others only at (2, 3), by less. The word's key patches are where it changes the image, not the brightest ones."""
    import numpy as np

    from medsynth.keypatches import key_patches

    rng = np.random.default_rng(1)
    feats = rng.normal(0, 0.1, (10, 4, 4, 3))
    feats[:, 0, 2] += [6.0, 0, 0]
    reports = ["small left effusion" if i % 2 else "lungs are clear" for i in range(10)]
    for i in range(1, 10, 2):
        feats[i, 2, 3] += [2.0, 0, 0]
    vocab = pd.DataFrame({"word": ["effusion"], "category": ["pathology"], "count": [5]})
    kp = key_patches(feats, np.zeros((10, 4, 4), dtype=int), reports, vocab, top=5)
    assert set(kp["image"]) == {1, 3, 5, 7, 9}
    assert (kp["row"] == 2).all() and (kp["col"] == 3).all() and kp["similarity"].gt(0.9).all()


def test_key_patches_weigh_a_position_by_effect_size_and_skip_words_without_enough_reports():
    """At (1, 1) films vary a lot whatever the report (padding, say) and the word's films sit higher by 2; at (3, 0)
    they sit higher by 1 where films hardly vary. A raw mean difference picks (1, 1); the effect size picks (3, 0).
    A word in one report only is its own noise: no key patches for it."""
    import numpy as np

    from medsynth.keypatches import key_patches

    rng = np.random.default_rng(2)
    feats = rng.normal(0, 0.05, (12, 4, 4, 3))
    feats[:, 1, 1, 0] += np.tile([4.0, 4.0, -4.0, -4.0], 3)
    has = np.arange(12) % 2 == 1
    feats[has, 1, 1, 0] += 2.0
    feats[has, 3, 0, 0] += 1.0
    reports = ["small left effusion" if h else "lungs are clear" for h in has]
    reports[0] = "lungs are clear with a tiny nodule"
    vocab = pd.DataFrame({"word": ["effusion", "nodule"], "category": ["pathology", "pathology"], "count": [6, 1]})
    kp = key_patches(feats, np.zeros((12, 4, 4), dtype=int), reports, vocab, top=3)
    assert set(kp["word"]) == {"effusion"}
    assert (kp["row"] == 3).all() and (kp["col"] == 0).all()
    assert kp["effect"].gt(5).all() and kp["similarity"].gt(0.9).all()
    assert key_patches(feats, np.zeros((12, 4, 4), dtype=int), reports, vocab, top=3, min_reports=1)["word"].eq(
        "nodule").any()
