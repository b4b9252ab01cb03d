"""CheXpert@k on a toy whose answer is worked out by hand, and the bag-of-words IoU baseline."""
import numpy as np
import pytest

from medsynth.errors import MedsynthError, RejectedInput
from medsynth.metrics import retrieval as R


def test_chexpert_at_k_hand_computed():
    labels = ["Edema", "Edema", "Edema", "Effusion", "Effusion"]
    sim = np.array([
        [1.0, 0.9, 0.1, 0.8, 0.2],
        [0.9, 1.0, 0.3, 0.7, 0.6],
        [0.1, 0.3, 1.0, 0.5, 0.4],
        [0.8, 0.7, 0.5, 1.0, 0.0],
        [0.2, 0.6, 0.4, 0.0, 1.0],
    ])
    # k=2 neighbours (self excluded): 0->{1,3}: 1/2; 1->{0,3}: 1/2; 2->{3,4}: 0; 3->{0,1}: 0; 4->{1,2}: 0
    out = R.chexpert_at_k(sim, labels, k=2)
    np.testing.assert_allclose(out["per_report"], [0.5, 0.5, 0.0, 0.0, 0.0])
    assert out["per_class"] == pytest.approx({"Edema": 1 / 3, "Effusion": 0.0})
    assert out["macro"] == pytest.approx(1 / 6)  # macro over classes, not the per-report mean (0.2)
    # k=1: 0->1 yes, 1->0 yes, 2->3 no, 3->0 no, 4->1 no
    assert R.chexpert_at_k(sim, labels, k=1)["per_class"] == pytest.approx({"Edema": 2 / 3, "Effusion": 0.0})
    with pytest.raises(MedsynthError, match="k must be"):
        R.chexpert_at_k(sim, labels, k=5)


def test_multilabel_reports_share_on_intersection():
    sim = np.array([[1, 0.5, 0.1], [0.5, 1, 0.2], [0.1, 0.2, 1]])
    out = R.chexpert_at_k(sim, [{"A", "B"}, {"B"}, {"C"}], k=1)
    # 0->1 shares B; 1->0 shares B; 2->1 no
    assert out["per_class"] == pytest.approx({"A": 1.0, "B": 1.0, "C": 0.0})


def test_bag_of_words_iou_and_cosine_matrix():
    sim = R.bag_of_words_iou(["No pleural effusion.", "Small pleural effusion", "Normal heart size"])
    assert sim[0, 1] == pytest.approx(2 / 4)  # {pleural, effusion} / {no, pleural, effusion, small}
    assert sim[0, 2] == 0.0 and sim[1, 1] == 1.0 and sim[1, 0] == sim[0, 1]
    with pytest.raises(RejectedInput, match="empty report"):
        R.bag_of_words_iou(["ok", "  ..  "])
    cos = R.cosine_matrix([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    assert cos[0, 1] == pytest.approx(0.0) and cos[0, 2] == pytest.approx(2 ** -0.5)
