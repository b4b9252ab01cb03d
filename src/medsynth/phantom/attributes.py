"""Tabular attributes of a virtual patient and the stated causal rules that turn them into findings.

The recorded row looks like a real clinical table: values go missing (NaN / None), and some carry sentinel codes
(age 999, pack_years -1 or 99999). Findings depend on the TRUE values (a missing age still has an age), so a model
that learns from the recorded table sees the causal signal through realistic noise.

CAUSAL_RULES (below) is the whole model: for each finding, in order, a logistic model
    logit P(finding) = intercept + sum(coef * term)
with the terms
    age10        (true age - 60) / 10
    male         1 for male patients
    current      1 for current smokers            former   1 for former smokers
    pack_years10 true pack-years / 10, capped at 8 (80 pack-years)
    exposure     1 with occupational dust/asbestos exposure
    <finding>    1 when an earlier finding in the order is present (e.g. cardiomegaly -> effusion,
                 emphysema -> pneumothorax).
Severity, side and location are drawn per finding in medsynth.phantom.findings.
"""
from __future__ import annotations

import math

import numpy as np

FINDINGS = ["emphysema", "nodule", "cardiomegaly", "effusion", "consolidation", "atelectasis", "pneumothorax"]

CAUSAL_RULES: dict[str, dict[str, float]] = {
    # Smoking and pack-years drive emphysema; dust exposure adds.
    "emphysema": {"intercept": -3.6, "current": 1.8, "former": 1.0, "pack_years10": 0.35, "exposure": 0.5,
                  "age10": 0.2},
    # Nodules and masses: smoking, exposure (asbestos) and age.
    "nodule": {"intercept": -3.0, "current": 1.2, "former": 0.6, "pack_years10": 0.15, "exposure": 0.8,
               "age10": 0.3},
    # Cardiomegaly rises with age, more in men.
    "cardiomegaly": {"intercept": -2.5, "age10": 0.55, "male": 0.4},
    # Effusion: age and heart failure (cardiomegaly).
    "effusion": {"intercept": -2.7, "age10": 0.35, "cardiomegaly": 1.6},
    # Consolidation (pneumonia): age and current smoking.
    "consolidation": {"intercept": -2.7, "age10": 0.25, "current": 0.6},
    # Atelectasis: age and compression by effusion.
    "atelectasis": {"intercept": -3.0, "age10": 0.25, "effusion": 1.4},
    # Pneumothorax: ruptured bullae (emphysema), smoking, male sex.
    "pneumothorax": {"intercept": -4.0, "emphysema": 1.8, "current": 0.7, "male": 0.5},
}

SMOKING_LEVELS = ("never", "former", "current")
RECORDED_SMOKING = ("never", "former", "current", "unknown")
AGE_SENTINEL = 999
PACK_YEARS_SENTINELS = (-1, 99999)


def _true_state(rng: np.random.Generator) -> dict:
    age = float(np.clip(rng.normal(58, 16), 18, 95))
    male = bool(rng.random() < 0.5)
    # Smoking prevalence rises a little with age (former smokers accumulate).
    p_never = 0.55 - 0.002 * (age - 58)
    p_current = 0.2
    status = rng.choice(SMOKING_LEVELS, p=[p_never, 1 - p_never - p_current, p_current])
    if status == "never":
        pack_years = 0.0
    else:
        years = max(1.0, min(age - 16, rng.gamma(4.0, 6.0)))
        pack_years = round(float(years * rng.uniform(0.3, 1.5)), 1)
    exposure = bool(rng.random() < (0.22 if male else 0.08))
    return {"age": age, "male": male, "smoking": str(status), "pack_years": pack_years, "exposure": exposure}


def terms(state: dict, present: dict[str, bool]) -> dict[str, float]:
    return {
        "age10": (state["age"] - 60) / 10.0,
        "male": float(state["male"]),
        "current": float(state["smoking"] == "current"),
        "former": float(state["smoking"] == "former"),
        "pack_years10": min(state["pack_years"], 80.0) / 10.0,
        "exposure": float(state["exposure"]),
        **{f: float(v) for f, v in present.items()},
    }


def finding_probability(finding: str, state: dict, present: dict[str, bool]) -> float:
    rule = CAUSAL_RULES[finding]
    t = terms(state, present)
    logit = rule["intercept"] + sum(c * t[k] for k, c in rule.items() if k != "intercept")
    return 1.0 / (1.0 + math.exp(-logit))


def _recorded(state: dict, rng: np.random.Generator) -> dict:
    """The row as a clinical table would hold it: missing values, sentinel codes, rounded numbers."""
    u = rng.random(8)
    age = int(state["age"])
    rec_age: float = float(age)
    if u[0] < 0.05:
        rec_age = float("nan")
    elif u[0] < 0.08:
        rec_age = float(AGE_SENTINEL)
    sex = None if u[1] < 0.02 else ("M" if state["male"] else "F")
    smoking = "unknown" if u[2] < 0.07 else state["smoking"]
    if smoking == "never":
        pack_years: float = 0.0
    elif smoking == "unknown":
        pack_years = float("nan")
    else:
        pack_years = float(state["pack_years"])
        if u[3] < 0.04:
            pack_years = float(PACK_YEARS_SENTINELS[0])
        elif u[3] < 0.07:
            pack_years = float(PACK_YEARS_SENTINELS[1])
        elif u[3] < 0.12:
            pack_years = float("nan")
    exposure = None if u[4] < 0.15 else ("yes" if state["exposure"] else "no")
    return {"age": rec_age, "sex": sex, "smoking_status": smoking, "pack_years": pack_years,
            "occupational_exposure": exposure}


def sample_attributes(rng: np.random.Generator) -> tuple[dict, dict, dict[str, bool]]:
    """(recorded row, true state, findings present) for one patient; findings drawn in CAUSAL_RULES order."""
    state = _true_state(rng)
    present: dict[str, bool] = {}
    for finding in FINDINGS:
        present[finding] = bool(rng.random() < finding_probability(finding, state, present))
    return _recorded(state, rng), state, present
