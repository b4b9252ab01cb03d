"""Radiology report text (FINDINGS + IMPRESSION) for a virtual patient, with varied, seeded phrasing.

Every finding the cohort can have is either described (with side, size/severity, location) or explicitly
negated, as radiologists do for the pertinent negatives (effusion, pneumothorax, consolidation, heart size).
"""
from __future__ import annotations

import numpy as np

from .findings import Finding


# Order of description in the report: heart, lungs, pleura (impression lists the same order).
REPORT_ORDER = ["cardiomegaly", "consolidation", "atelectasis", "nodule", "emphysema", "effusion", "pneumothorax"]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _side_word(side: str) -> str:
    return {"right": "right", "left": "left", "bilateral": "bilateral"}.get(side, "")


_SEVERITY = {"small": "small", "moderate": "moderate", "large": "large", "mild": "mild", "severe": "severe",
             "medium": "", "mass": "", "patchy": "patchy", "segmental": "segmental", "lobar": "lobar",
             "platelike": "platelike"}


def _describe(f: Finding, rng: np.random.Generator) -> tuple[str, str]:
    """(findings sentence, impression phrase) for one present finding."""
    side = _side_word(f.side)
    sev = _SEVERITY.get(f.severity, f.severity)
    if f.name == "effusion":
        what = "bilateral pleural effusions" if f.side == "bilateral" else f"{side} pleural effusion"
        if f.severity == "small":
            body = _pick(rng, [f"Small {what} with blunting of the costophrenic angle{'s' if f.side == 'bilateral' else ''}.",
                               f"Blunting of the {side} costophrenic angle{'s' if f.side == 'bilateral' else ''}, "
                               f"consistent with small {what}."])
        else:
            body = _pick(rng, [f"{sev.capitalize()} {what} with a meniscus sign.",
                               f"There is a {sev} {what} obscuring the {side} hemidiaphragm" + ("s." if f.side == "bilateral" else ".")])
        return body, f"{sev.capitalize()} {what}."
    if f.name == "cardiomegaly":
        body = _pick(rng, [f"The cardiac silhouette is {sev}ly enlarged.", f"{sev.capitalize()} cardiomegaly.",
                           f"Heart size is {sev}ly enlarged."])
        return body, _pick(rng, [f"{sev.capitalize()} cardiomegaly.", f"{sev.capitalize()} enlargement of the cardiac silhouette."])
    if f.name == "nodule":
        size_cm = f"{f.size_mm / 10:.1f} cm"
        if f.severity == "mass":
            body = f"{size_cm} mass in the {f.location}."
            imp = _pick(rng, [f"{f.location.capitalize()} mass, suspicious for malignancy; CT recommended.",
                              f"{size_cm} {f.location} mass. Further evaluation with chest CT is recommended."])
        else:
            several = "," in f.location
            noun = "nodules" if several else "nodule"
            body = _pick(rng, [f"{'Pulmonary' if several else 'A'} {noun} in the {f.location}, measuring up to {size_cm}.",
                               f"{size_cm} {'largest ' if several else ''}{noun} projecting over the {f.location}."])
            imp = _pick(rng, [f"Pulmonary {noun} in the {f.location}. Recommend CT for further characterization.",
                              f"{f.location.capitalize()} {noun}; consider chest CT."])
        return body, imp
    if f.name == "consolidation":
        body = _pick(rng, [f"{sev.capitalize()} consolidation in the {f.location}.",
                           f"There is {sev} airspace opacity in the {f.location}, compatible with consolidation."])
        imp = _pick(rng, [f"{f.location.capitalize()} consolidation, which may represent pneumonia in the appropriate "
                          "clinical setting.", f"{sev.capitalize()} {f.location} consolidation."])
        return body, imp
    if f.name == "atelectasis":
        if f.severity == "platelike":
            body = _pick(rng, [f"Platelike atelectasis in the {f.location}.",
                               f"Linear opacity in the {f.location}, likely platelike atelectasis."])
            return body, f"Platelike atelectasis in the {f.location}."
        body = _pick(rng, [f"{sev.capitalize()} atelectasis of the {f.location} with volume loss.",
                           f"Opacity with volume loss in the {f.location}, consistent with {sev} atelectasis."])
        return body, f"{sev.capitalize()} {f.location} atelectasis."
    if f.name == "pneumothorax":
        body = _pick(rng, [f"{sev.capitalize()} {side} apical pneumothorax with a visible pleural line.",
                           f"There is a {sev} {side} pneumothorax, with absent lung markings laterally and at the apex."])
        return body, _pick(rng, [f"{sev.capitalize()} {side} pneumothorax.", f"{side.capitalize()} pneumothorax, {sev}."])
    if f.name == "emphysema":
        body = _pick(rng, ["The lungs are hyperlucent with upper lobe predominant emphysematous change.",
                           f"{sev.capitalize()} emphysema, most pronounced in the upper lobes."])
        return body, _pick(rng, [f"{sev.capitalize()} emphysema.", "Emphysema, upper lobe predominant."])
    raise ValueError(f"no report wording for finding {f.name!r}")


_NEGATIVES = {
    "cardiomegaly": ["The heart size is normal.", "Normal cardiac silhouette.", "Heart size is within normal limits."],
    "consolidation": ["No focal consolidation.", "The lungs are clear without focal consolidation.",
                      "No focal airspace opacity."],
    "effusion": ["No pleural effusion.", "There is no pleural effusion."],
    "pneumothorax": ["No pneumothorax.", "There is no pneumothorax."],
    "effusion+pneumothorax": ["No pleural effusion or pneumothorax.", "No pneumothorax or pleural effusion.",
                              "There is no pleural effusion or pneumothorax."],
    "nodule": ["No suspicious pulmonary nodule or mass.", "No pulmonary nodules."],
}
_NORMAL_IMPRESSION = ["No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "Normal chest radiograph.", "No radiographic evidence of acute disease."]


def write_report(findings: list[Finding], rng: np.random.Generator) -> tuple[str, str]:
    """(FINDINGS text, IMPRESSION text)."""
    present = {f.name: f for f in findings}
    sentences, impressions = [], []
    for f in sorted(findings, key=lambda f: REPORT_ORDER.index(f.name)):
        body, imp = _describe(f, rng)
        sentences.append(body)
        impressions.append(imp)
    negs = []
    if "cardiomegaly" not in present:
        negs.append(_pick(rng, _NEGATIVES["cardiomegaly"]))
    negs.append(_pick(rng, ["The mediastinal contours are unremarkable.", "Mediastinal contours are normal."]))
    if "consolidation" not in present:
        lungs_abnormal = bool(set(present) & {"nodule", "emphysema", "atelectasis", "effusion", "pneumothorax"})
        # 'The lungs are clear' only when they are; otherwise the narrower negative.
        negs.append("No focal consolidation." if lungs_abnormal else _pick(rng, _NEGATIVES["consolidation"]))
    if "nodule" not in present and rng.random() < 0.6:
        negs.append(_pick(rng, _NEGATIVES["nodule"]))
    if "effusion" not in present and "pneumothorax" not in present:
        negs.append(_pick(rng, _NEGATIVES["effusion+pneumothorax"]))
    elif "effusion" not in present:
        negs.append(_pick(rng, _NEGATIVES["effusion"]))
    elif "pneumothorax" not in present:
        negs.append(_pick(rng, _NEGATIVES["pneumothorax"]))
    if rng.random() < 0.5:
        negs.append(_pick(rng, ["No acute osseous abnormality.", "The visualized osseous structures are intact."]))
    text = " ".join(sentences + negs)
    impression = " ".join(impressions) if impressions else _pick(rng, _NORMAL_IMPRESSION)
    return text, impression
