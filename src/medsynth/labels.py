"""OpenI / IU X-ray MeSH terms -> CheXpert label space.

OpenI indexes each report with MeSH "major" terms (curated) and "automatic" terms (from MTI), written as
'Term/qualifier/qualifier', e.g. 'Opacity/lung/base/left/mild' or 'Cardiomegaly/borderline'. Only the first part
names the finding; qualifiers give site and degree. The mapping, by first part (case-insensitive):

| MeSH term (major or automatic)                                                  | CheXpert label             |
|---------------------------------------------------------------------------------|----------------------------|
| normal                                                                          | No Finding                 |
| Mediastinum + qualifier enlarged/widened/prominent                              | Enlarged Cardiomediastinum |
| Cardiomegaly; Cardiac Shadow + enlarged; Heart + enlarged                       | Cardiomegaly               |
| Opacity, Density, Infiltrate(s), Airspace Disease                               | Lung Opacity               |
| Nodule, Mass, Lung Neoplasms                                                    | Lung Lesion                |
| Pulmonary Edema, Edema, Pulmonary Congestion, congestion                        | Edema                      |
| Consolidation                                                                   | Consolidation              |
| Pneumonia                                                                       | Pneumonia                  |
| Pulmonary Atelectasis, Atelectasis (atelectases)                                | Atelectasis                |
| Pneumothorax, Hydropneumothorax, Hemopneumothorax                               | Pneumothorax               |
| Pleural Effusion, effusion, Hemothorax                                          | Pleural Effusion           |
| pleural thickening; Thickening + pleura; Pleura + thickening/scarring           | Pleural Other              |
| Fractures, Bone; Rib Fractures; fracture; rib fracture                          | Fracture                   |
| Catheters, Indwelling; Medical Device; Implanted Medical Device; Tube, Inserted;|                            |
|   Stents; Surgical Instruments; Catheterization, Central Venous; Pacemaker      | Support Devices            |

Everything else (granulomas, calcinosis, degenerative spine change, 'No Indexing', image-quality notes) has no
CheXpert label and leaves the labels untouched (NaN = not mentioned).

Values follow CheXpert: 1 positive, -1 uncertain, 0 negative, NaN not mentioned. A term whose qualifiers include
an uncertainty word ('borderline', 'possible', 'questionable', ...) gives -1; a positive from any other term wins
over an uncertain one. 'No Finding' is 1 only for a report indexed 'normal' with no positive or uncertain
pathology; a report with any such pathology gets 'No Finding' = 0 (Support Devices do not count, as in CheXpert).
"""
from __future__ import annotations

import math
from typing import Iterable

from .manifest import CHEXPERT_LABELS

TERM_TO_LABEL = {
    "normal": "No Finding",
    "cardiomegaly": "Cardiomegaly",
    "opacity": "Lung Opacity",
    "density": "Lung Opacity",
    "infiltrate": "Lung Opacity",
    "infiltrates": "Lung Opacity",
    "airspace disease": "Lung Opacity",
    "nodule": "Lung Lesion",
    "nodules": "Lung Lesion",
    "mass": "Lung Lesion",
    "lung neoplasms": "Lung Lesion",
    "pulmonary edema": "Edema",
    "edema": "Edema",
    "edemas": "Edema",
    "pulmonary congestion": "Edema",
    "congestion": "Edema",
    "consolidation": "Consolidation",
    "pneumonia": "Pneumonia",
    "pulmonary atelectasis": "Atelectasis",
    "atelectasis": "Atelectasis",
    "atelectases": "Atelectasis",
    "pneumothorax": "Pneumothorax",
    "hydropneumothorax": "Pneumothorax",
    "hemopneumothorax": "Pneumothorax",
    "pleural effusion": "Pleural Effusion",
    "pleural effusions": "Pleural Effusion",
    "bilateral pleural effusion": "Pleural Effusion",
    "effusion": "Pleural Effusion",
    "hemothorax": "Pleural Effusion",
    "pleural thickening": "Pleural Other",
    "fractures, bone": "Fracture",
    "rib fractures": "Fracture",
    "fracture": "Fracture",
    "rib fracture": "Fracture",
    "catheters, indwelling": "Support Devices",
    "medical device": "Support Devices",
    "implanted medical device": "Support Devices",
    "tube, inserted": "Support Devices",
    "stents": "Support Devices",
    "surgical instruments": "Support Devices",
    "catheterization, central venous": "Support Devices",
    "pacemaker, artificial": "Support Devices",
    "pacemaker": "Support Devices",
}

# (term, any of these qualifiers) -> label: terms that name an anatomy, the qualifier names the finding.
QUALIFIED_TERMS = {
    "mediastinum": ({"enlarged", "widened", "prominent"}, "Enlarged Cardiomediastinum"),
    "cardiac shadow": ({"enlarged"}, "Cardiomegaly"),
    "heart": ({"enlarged"}, "Cardiomegaly"),
    "thickening": ({"pleura"}, "Pleural Other"),
    "pleura": ({"thickening", "scarring"}, "Pleural Other"),
}

UNCERTAIN_QUALIFIERS = {"borderline", "possible", "probable", "questionable", "suspected", "equivocal", "likely"}

# Pathologies whose presence rules out 'No Finding' (Support Devices excluded, as in the CheXpert labeler).
_PATHOLOGIES = [label for label in CHEXPERT_LABELS if label not in ("No Finding", "Support Devices")]


def term_label(term: str) -> tuple[str | None, float]:
    """(CheXpert label or None, 1.0 or -1.0) for one 'Term/qualifier/...' MeSH string."""
    parts = [p.strip().lower() for p in term.split("/")]
    head, qualifiers = " ".join(parts[0].split()), set(parts[1:])
    value = -1.0 if qualifiers & UNCERTAIN_QUALIFIERS else 1.0
    if head in TERM_TO_LABEL:
        return TERM_TO_LABEL[head], value
    if head in QUALIFIED_TERMS:
        needed, label = QUALIFIED_TERMS[head]
        if qualifiers & needed:
            return label, value
    return None, value


def mesh_to_chexpert(terms: Iterable[str]) -> dict[str, float]:
    """CheXpert labels (all 14 keys, NaN where not mentioned) from a report's MeSH terms."""
    labels = {label: math.nan for label in CHEXPERT_LABELS}
    for term in terms:
        label, value = term_label(term)
        if label is None:
            continue
        current = labels[label]
        # positive beats uncertain beats not-mentioned
        if math.isnan(current) or value > current:
            labels[label] = value
    sick = any(not math.isnan(labels[p]) and labels[p] != 0 for p in _PATHOLOGIES)
    if sick:
        labels["No Finding"] = 0.0
    elif labels["No Finding"] == -1.0:
        labels["No Finding"] = 1.0  # 'normal/borderline' is not an uncertain pathology
    return labels


def normalize_view(raw) -> str:
    """One view vocabulary across datasets: 'PA', 'AP', 'LATERAL', 'FRONTAL' (frontal, projection unknown) or ''.

    Sources write e.g. 'PA', 'AP AXIAL', 'LL', 'RL', 'LATERAL', 'LARGE LATERAL', 'Lateral', 'L' (OpenI t-SNE view).
    """
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return ""
    text = str(raw).strip().upper()
    if not text or text in ("NAN", "NONE"):
        return ""
    if text.startswith("PA"):
        return "PA"
    if text.startswith("AP"):
        return "AP"
    if "LAT" in text or text in ("LL", "RL", "L", "LLD", "RLD"):
        return "LATERAL"
    if text == "FRONTAL":
        return "FRONTAL"
    return text
