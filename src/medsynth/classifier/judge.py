"""The judge: the classifier that scores real and generated images for the papers' tables, in one place.

Every table that scores images with the project's own classifier (chambon2022 Tables 1/5/6, choksi2025's AUC on
generated images, siddiqui2023, chen2024) goes through this API:

- ``load_judge(weights, card)`` -> a ``medsynth.metrics.scoring.Scorer`` carrying the judge's validation-chosen
  thresholds, its held-out AUC table and its AUC floor;
- ``heldout_table(card)`` -> per label: held-out AUC, its 95 % bootstrap interval, positives/negatives, threshold;
- ``refusals(card, labels)`` -> {label: reason} for labels whose held-out AUC is below the floor (or undefined):
  those are never scored; the reason is recorded where the number would have been;
- ``judge_provenance(card)`` -> the compact record a table cell / report page prints beside the numbers it scored.

On the embedded phantom data the judge is trained on its own balanced cohort (medsynth.phantom.judge_cohort;
rules/judge.smk), disjoint in patients and random streams from every cohort a generator sees. On a real dataset it
is trained on that dataset's training split. At paper scale the papers name torchxrayvision's DenseNet
(scorer ``xrv-densenet121``) instead, which has no held-out table here and is used as published.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import MedsynthError

AUC_FLOOR = 0.9  # default: a finding the judge cannot separate this well on its own held-out split is not scored


def read_card(card: str | os.PathLike | dict) -> dict:
    return card if isinstance(card, dict) else json.loads(Path(card).read_text())


def heldout_table(card: str | os.PathLike | dict) -> dict:
    """{label: {"auc", "ci", "positives", "negatives", "n", "threshold"}} of the judge's held-out split ({} for a
    classifier trained before held-out tables existed)."""
    return dict(read_card(card).get("heldout") or {})


def auc_floor(card: str | os.PathLike | dict) -> float:
    return float(read_card(card).get("auc_floor", AUC_FLOOR))


def refusals(card: str | os.PathLike | dict, labels: list[str] | None = None) -> dict[str, str]:
    """Labels the judge must not score, each with its reason: held-out AUC below the floor, or undefined."""
    card = read_card(card)
    table, floor = heldout_table(card), auc_floor(card)
    out = {}
    for label in labels if labels is not None else card.get("labels", []):
        h = table.get(label)
        if not table:
            continue  # no held-out table: nothing to refuse on (the card predates it)
        if h is None or h.get("auc") is None:
            out[label] = f"the judge has no held-out AUC for '{label}' ({(h or {}).get('auc_undefined', 'not learned')})"
        elif h["auc"] < floor:
            lo, hi = h["ci"] or (None, None)
            out[label] = (f"the judge's held-out AUC for '{label}' is {h['auc']:.3f} (95% CI {_fmt(lo)}-{_fmt(hi)}, "
                          f"{h['positives']} positives), below the floor {floor}")
    return out


def _fmt(x) -> str:
    return "?" if x is None else f"{x:.3f}"


def heldout_text(h: dict) -> str:
    """'0.981 [0.962, 0.994] (67+/157-)' for one label's held-out record."""
    if h.get("auc") is None:
        return f"undefined ({h.get('auc_undefined', 'one class')})"
    ci = h.get("ci") or (None, None)
    return f"{h['auc']:.3f} [{_fmt(ci[0])}, {_fmt(ci[1])}] ({h['positives']}+/{h['negatives']}-)"


def judge_provenance(card: str | os.PathLike | dict, labels: list[str] | None = None) -> dict:
    """What a page prints beside the numbers the judge scored: where it was trained, how it was tested, its held-out
    AUC per label with 95 % bootstrap interval, its thresholds and floor, and what it refused."""
    card = read_card(card)
    table = heldout_table(card)
    labels = [lab for lab in (labels or card.get("labels", [])) if lab in table]
    return {"name": f"classifier:{card.get('arch', '?')}", "trained_on": card.get("trained_on", "?"),
            "heldout_split": card.get("heldout_split", "test"), "auc_floor": auc_floor(card),
            "heldout_auc": {lab: heldout_text(table[lab]) for lab in labels},
            "thresholds": {lab: round(float(card.get("thresholds", {}).get(lab, 0.5)), 4) for lab in labels},
            "threshold_rule": "Youden's J on the judge's validation split",
            "refused": refusals(card, labels)}


def load_judge(weights: str | os.PathLike, card: str | os.PathLike, labels: list[str] | None = None):
    """The project's classifier as a Scorer (medsynth.metrics.scoring) with its thresholds, held-out table and floor."""
    from ..metrics.scoring import load_scorer

    if not weights or not card:
        raise MedsynthError("the judge needs the trained classifier's weights and card "
                            "(rule train_classifier: models/classifier/<dataset>/model.safetensors + model.json)")
    return load_scorer("classifier", weights, card, labels=labels)


# ------------------------------------------------------------------------------------------- workflow helpers

def judge_config(config: dict) -> dict:
    """The config's `classifier.judge` block (cohort size, balance, splits, seed, floor, bootstrap count)."""
    return dict((config.get("classifier") or {}).get("judge") or {})


def judged_by_cohort(config: dict, dataset: str) -> bool:
    """A phantom radiograph dataset's classifier is trained on the judge's own cohort (unless judge.enabled is
    false); a real dataset's on its own training split."""
    ds = (config.get("datasets") or {}).get(dataset) or {}
    return ds.get("adapter") == "phantom_cxr" and judge_config(config).get("enabled", True)


def judge_shards(config: dict) -> list[str]:
    from ..phantom.judge_cohort import judge_settings
    from ..workflow import shard_ids

    cfg = judge_settings(judge_config(config))
    return shard_ids(int(cfg["n_patients"]), int(cfg["shard_size"]))
