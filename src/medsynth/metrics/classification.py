"""Classifier-based metrics (chambon2022 Tables 1/5/6, chen2024 Table 2) via scikit-learn, and feature cosine
similarity between originals and reconstructions.

Scores are probabilities; a prediction is positive when score >= threshold (0.5 unless stated). AUC is undefined
when a label has a single class in y_true: it is then reported as None with the reason, never dropped.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import MedsynthError


def binarize_chexpert(values, uncertain: str = "positive", missing: str = "negative") -> np.ndarray:
    """CheXpert encoding (1 positive, 0 negative, -1 uncertain, NaN/blank missing) -> 0/1.
    chambon2022: uncertain = positive, missing = negative."""
    policy = {"positive": 1.0, "negative": 0.0}
    if uncertain not in policy or missing not in policy:
        raise MedsynthError("uncertain/missing policy must be 'positive' or 'negative'")
    arr = np.array(values, dtype=np.float64)
    known = np.isnan(arr) | np.isin(arr, (1.0, 0.0, -1.0))
    if not known.all():
        raise MedsynthError(f"CheXpert labels must be 1, 0, -1 or missing; found {sorted(set(arr[~known]))[:5]}")
    out = arr.copy()
    out[arr == -1] = policy[uncertain]
    out[np.isnan(arr)] = policy[missing]
    return out.astype(np.int64)


def _as_matrix(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise MedsynthError(f"{name} must be a finite N x L array, got shape {np.shape(x)}")
    return arr


def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict:
    """AUC, accuracy, F1, precision, recall for one label."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    t = _as_matrix(y_true, "y_true")[:, 0].astype(int)
    s = _as_matrix(y_score, "y_score")[:, 0]
    if not set(np.unique(t)) <= {0, 1}:
        raise MedsynthError("y_true must be 0/1 (binarize CheXpert labels first)")
    pred = (s >= threshold).astype(int)
    out = {"n": int(len(t)), "positives": int(t.sum()), "threshold": threshold,
           "accuracy": float(accuracy_score(t, pred)),
           # zero_division=0: no predicted positives -> precision 0, as chambon2022 Table 5 prints
           "precision": float(precision_score(t, pred, zero_division=0)),
           "recall": float(recall_score(t, pred, zero_division=0)),
           "f1": float(f1_score(t, pred, zero_division=0))}
    if len(np.unique(t)) < 2:
        out["auc"], out["auc_undefined"] = None, "only one class present in y_true"
    else:
        out["auc"] = float(roc_auc_score(t, s))
    return out


def per_label_metrics(y_true, y_score, labels: Sequence[str], threshold: float | Mapping[str, float] = 0.5) -> dict:
    """{label: metrics} plus "macro": unweighted means over labels (AUC over labels where it is defined).
    `threshold`: one for all labels, or one per label (e.g. a classifier's validation-chosen operating points)."""
    t, s = _as_matrix(y_true, "y_true"), _as_matrix(y_score, "y_score")
    if t.shape != s.shape or t.shape[1] != len(labels):
        raise MedsynthError(f"y_true {t.shape}, y_score {s.shape} and {len(labels)} label names do not match")
    per = threshold if isinstance(threshold, Mapping) else {name: threshold for name in labels}
    table = {name: binary_metrics(t[:, j], s[:, j], float(per.get(name, 0.5))) for j, name in enumerate(labels)}
    macro = {}
    for key in ("accuracy", "precision", "recall", "f1", "auc"):
        vals = [m[key] for m in table.values() if m[key] is not None]
        macro[key] = float(np.mean(vals)) if vals else None
    macro["auc_labels"] = sum(m["auc"] is not None for m in table.values())
    table["macro"] = macro
    return table


def auc_with_ci(y_true, y_score, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """ROC AUC of one label with its percentile bootstrap interval: images resampled with replacement `n_boot`
    times (seeded); resamples with one class only are skipped and counted. AUC None (with the reason) without
    both classes."""
    from sklearn.metrics import roc_auc_score

    t = np.asarray(y_true, float).ravel().astype(int)
    s = np.asarray(y_score, float).ravel()
    out = {"n": int(len(t)), "positives": int(t.sum()), "negatives": int(len(t) - t.sum()), "n_boot": int(n_boot),
           "level": level, "method": "percentile bootstrap over images"}
    if len(np.unique(t)) < 2:
        return {**out, "auc": None, "ci": None, "auc_undefined": "only one class present"}
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(t), len(t))
        if 0 < t[idx].sum() < len(idx):
            boots.append(roc_auc_score(t[idx], s[idx]))
    lo, hi = (np.percentile(boots, [50 * (1 - level), 50 * (1 + level)]) if boots else (np.nan, np.nan))
    return {**out, "auc": float(roc_auc_score(t, s)), "ci": [float(lo), float(hi)] if boots else None,
            "boot_skipped": int(n_boot - len(boots))}


def cosine_similarity(a, b) -> np.ndarray:
    """Row-wise cosine similarity of paired feature vectors (N x D each) -> N values."""
    x, y = _as_matrix(a, "features a"), _as_matrix(b, "features b")
    if x.shape != y.shape:
        raise MedsynthError(f"paired features differ in shape: {x.shape} vs {y.shape}")
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    if (nx == 0).any() or (ny == 0).any():
        raise MedsynthError("cosine similarity of a zero feature vector is undefined")
    return np.einsum("ij,ij->i", x, y) / (nx * ny)
