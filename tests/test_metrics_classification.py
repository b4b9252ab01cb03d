"""Classifier metrics, CheXpert label policy and feature cosine similarity against hand-checked values."""
import numpy as np
import pytest

from medsynth.errors import MedsynthError
from medsynth.metrics import classification as C


def test_binarize_chexpert_policy():
    vals = [1, 0, -1, np.nan]
    assert C.binarize_chexpert(vals).tolist() == [1, 0, 1, 0]  # chambon2022: uncertain +, missing -
    assert C.binarize_chexpert(vals, uncertain="negative").tolist() == [1, 0, 0, 0]
    with pytest.raises(MedsynthError, match="1, 0, -1"):
        C.binarize_chexpert([2])


def test_binary_metrics_hand_checked():
    y = [1, 1, 1, 0, 0, 0]
    s = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1]
    m = C.binary_metrics(y, s)
    # predictions at 0.5: 1,1,0,1,0,0 -> TP 2, FN 1, FP 1, TN 2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # AUC: positive-negative pairs ranked correctly: 0.9>all(3), 0.6>0.2,0.1 (2), 0.4>0.2,0.1 (2) -> 7/9
    assert m["auc"] == pytest.approx(7 / 9)
    assert (m["n"], m["positives"]) == (6, 3)


def test_per_label_table_and_undefined_auc():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    s = np.array([[0.8, 0.9], [0.3, 0.1], [0.4, 0.2], [0.1, 0.3]])
    table = C.per_label_metrics(y, s, ["Effusion", "Edema"])
    assert table["Effusion"]["auc"] == pytest.approx(1.0)
    assert table["Effusion"]["accuracy"] == pytest.approx(0.75)
    assert table["Edema"]["auc"] is None and "one class" in table["Edema"]["auc_undefined"]
    assert table["Edema"]["precision"] == 0.0  # one false positive, no true positives
    assert table["macro"]["auc"] == pytest.approx(1.0) and table["macro"]["auc_labels"] == 1
    assert table["macro"]["accuracy"] == pytest.approx((0.75 + 0.75) / 2)
    with pytest.raises(MedsynthError, match="do not match"):
        C.per_label_metrics(y, s, ["only-one"])


def test_cosine_similarity_rowwise():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
    np.testing.assert_allclose(C.cosine_similarity(a, b), [0.0, 1.0, -1.0])
    with pytest.raises(MedsynthError, match="zero feature"):
        C.cosine_similarity(np.zeros((1, 2)), np.ones((1, 2)))
