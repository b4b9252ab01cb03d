"""MeSH -> CheXpert label mapping and view normalisation."""
from __future__ import annotations

import math
import re
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from medsynth import embedded, labels
from medsynth.labels import TERM_TO_LABEL, mesh_to_chexpert, normalize_view, term_label
from medsynth.manifest import CHEXPERT_LABELS


@pytest.mark.parametrize("term, label", [
    ("Pleural Effusion/right/small", "Pleural Effusion"),
    ("Cardiomegaly/mild", "Cardiomegaly"),
    ("normal", "No Finding"),
    ("Opacity/lung/base/left", "Lung Opacity"),
    ("Airspace Disease/lung/upper lobe", "Lung Opacity"),
    ("Nodule/lung/right", "Lung Lesion"),
    ("Mass/mediastinum", "Lung Lesion"),
    ("Pulmonary Edema", "Edema"),
    ("Pulmonary Congestion/mild", "Edema"),
    ("Consolidation/lung/base/left", "Consolidation"),
    ("Pneumonia/lung/lingula", "Pneumonia"),
    ("Pulmonary Atelectasis/base/bilateral", "Atelectasis"),
    ("atelectases", "Atelectasis"),
    ("Pneumothorax/apex/left/small", "Pneumothorax"),
    ("Hydropneumothorax", "Pneumothorax"),
    ("Fractures, Bone/ribs/left/healed", "Fracture"),
    ("Medical Device", "Support Devices"),
    ("Catheters, Indwelling/right", "Support Devices"),
    ("Implanted Medical Device/chest", "Support Devices"),
    ("Mediastinum/enlarged", "Enlarged Cardiomediastinum"),
    ("Cardiac Shadow/enlarged/severe", "Cardiomegaly"),
    ("Thickening/pleura/apex/bilateral", "Pleural Other"),
    ("pleural thickening", "Pleural Other"),
    ("PLEURAL  EFFUSION", "Pleural Effusion"),  # case and spacing do not matter
])
def test_term_mapping(term, label):
    assert term_label(term) == (label, 1.0)


@pytest.mark.parametrize("term", ["Calcified Granuloma/lung/upper lobe/right", "No Indexing", "Mediastinum",
                                  "Thoracic Vertebrae/degenerative", "Technical Quality of Image Unsatisfactory ",
                                  "Cardiac Shadow"])
def test_unmapped_terms(term):
    assert term_label(term)[0] is None


def test_uncertain_qualifier_and_precedence():
    assert term_label("Cardiomegaly/borderline") == ("Cardiomegaly", -1.0)
    lab = mesh_to_chexpert(["Cardiomegaly/borderline"])
    assert lab["Cardiomegaly"] == -1.0 and lab["No Finding"] == 0.0
    lab = mesh_to_chexpert(["Cardiomegaly/borderline", "Cardiomegaly/mild"])  # positive wins over uncertain
    assert lab["Cardiomegaly"] == 1.0
    lab = mesh_to_chexpert(["Cardiomegaly/mild", "Cardiomegaly/borderline"])
    assert lab["Cardiomegaly"] == 1.0


def test_report_level_labels():
    lab = mesh_to_chexpert(["normal"])
    assert lab["No Finding"] == 1.0 and sum(not math.isnan(v) for v in lab.values()) == 1
    lab = mesh_to_chexpert(["normal", "Opacity/lung"])  # inconsistent indexing: pathology wins
    assert lab["No Finding"] == 0.0 and lab["Lung Opacity"] == 1.0
    lab = mesh_to_chexpert(["Medical Device", "normal"])  # devices do not contradict 'No Finding'
    assert lab["No Finding"] == 1.0 and lab["Support Devices"] == 1.0
    lab = mesh_to_chexpert(["Calcified Granuloma/lung", "No Indexing"])
    assert all(math.isnan(v) for v in lab.values()) and list(lab) == CHEXPERT_LABELS
    assert all(math.isnan(v) for v in mesh_to_chexpert([]).values())


def test_every_target_is_a_chexpert_label_and_documented():
    doc = labels.__doc__
    targets = set(TERM_TO_LABEL.values()) | {lab for _, lab in labels.QUALIFIED_TERMS.values()}
    assert targets == set(CHEXPERT_LABELS)  # the mapping reaches all 14 labels
    for label in targets:
        assert re.search(rf"\|\s*{re.escape(label)}\s*\|", doc), label


def test_coverage_of_real_openi_terms():
    """On the 3,955 real reports: most indexed findings that CheXpert can express are mapped."""
    counts = Counter()
    with tarfile.open(embedded.openi_reports()) as tar:
        for m in tar:
            if m.isfile():
                for node in ET.fromstring(tar.extractfile(m).read()).iter("major"):
                    counts[term_label(node.text)[0]] += 1
    assert counts["No Finding"] == 1391
    assert counts["Lung Opacity"] > 700 and counts["Atelectasis"] >= 347 and counts["Cardiomegaly"] >= 375
    assert counts["Support Devices"] > 400 and counts["Fracture"] >= 90 and counts["Pleural Effusion"] >= 172
    assert sum(v for k, v in counts.items() if k) > 0.45 * sum(counts.values())


@pytest.mark.parametrize("raw, view", [("PA", "PA"), ("AP AXIAL", "AP"), ("LATERAL", "LATERAL"), ("LL", "LATERAL"),
                                       ("RL", "LATERAL"), ("LARGE LATERAL", "LATERAL"), ("Lateral", "LATERAL"),
                                       ("L", "LATERAL"), (float("nan"), ""), (None, ""), ("", ""),
                                       ("Frontal", "FRONTAL"), ("PA LLD", "PA")])
def test_normalize_view(raw, view):
    assert normalize_view(raw) == view
