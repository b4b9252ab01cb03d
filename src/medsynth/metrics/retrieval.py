"""CheXpert@k (chambon2022 Tables 2-3): does a text encoder put reports with the same finding close together?

For each report, take its k most similar OTHER reports (self excluded) and count the fraction sharing its CheXpert
label. Ties at the k-th neighbour get fractional credit: the m reports tied for the last r places each count r/m
(the expected score under a uniformly random tie-break), so the result does not depend on the table's row order. Per class: the mean over that class's reports;
macro: the unweighted mean over classes. Labels are one class per report; for multi-label reports pass sets: a
neighbour then "shares" when the label sets intersect, and a report counts towards each of its classes.
`neighbour_labels` (optional) gives the neighbours' side of the match separately: report i then shares with
neighbour j when labels[i] & neighbour_labels[j] is non-empty (chambon2022's "a report's label is the class it was
drawn for; a neighbour shares it when positive for that class": labels = drawn class, neighbour_labels = positives).
Baseline similarity: bag-of-words IoU (Jaccard) of the lower-cased word sets.
"""
from __future__ import annotations

import re
from typing import Hashable, Sequence

import numpy as np

from ..errors import MedsynthError, RejectedInput

_WORD = re.compile(r"[a-z0-9]+")


def _label_sets(labels: Sequence) -> list[frozenset]:
    out = []
    for lab in labels:
        if isinstance(lab, (set, frozenset, list, tuple)):
            out.append(frozenset(lab))
        elif isinstance(lab, Hashable) and lab is not None:
            out.append(frozenset([lab]))
        else:
            raise MedsynthError(f"unusable CheXpert label {lab!r}")
    return out


def chexpert_at_k(similarity, labels: Sequence, k: int = 10, neighbour_labels: Sequence | None = None) -> dict:
    """Returns {"macro": float, "per_class": {class: float}, "per_report": array, "k": k, "n": N}."""
    sim = np.asarray(similarity, dtype=np.float64)
    n = len(labels)
    if sim.shape != (n, n):
        raise MedsynthError(f"similarity must be {n} x {n} for {n} labels, got {sim.shape}")
    if not 1 <= k <= n - 1:
        raise MedsynthError(f"k must be between 1 and N-1 = {n - 1}, got {k}")
    sets = _label_sets(labels)
    if neighbour_labels is not None and len(neighbour_labels) != n:
        raise MedsynthError(f"neighbour_labels has {len(neighbour_labels)} entries for {n} reports")
    other = sets if neighbour_labels is None else _label_sets(neighbour_labels)
    per_report = np.empty(n)
    for i in range(n):
        row = np.delete(sim[i], i)  # self excluded
        match = np.array([bool(sets[i] & other[j]) for j in range(n) if j != i], dtype=np.float64)
        kth = np.partition(row, n - 1 - k)[n - 1 - k]  # the k-th largest similarity
        above, tied = row > kth, row == kth
        # Ties at the boundary share the remaining places (order-invariant, = the mean over random tie-breaks).
        per_report[i] = (match[above].sum() + (k - above.sum()) * match[tied].mean()) / k
    classes = sorted({c for s in sets for c in s}, key=str)
    per_class = {c: float(np.mean([per_report[i] for i in range(n) if c in sets[i]])) for c in classes}
    return {"macro": float(np.mean(list(per_class.values()))), "per_class": per_class, "per_report": per_report,
            "k": k, "n": n}


def cosine_matrix(embeddings) -> np.ndarray:
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise MedsynthError(f"embeddings must be N x D, got shape {emb.shape}")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if (norms == 0).any():
        raise MedsynthError(f"zero embedding for report(s) {np.flatnonzero(norms[:, 0] == 0)[:5].tolist()}")
    unit = emb / norms
    return unit @ unit.T


def bag_of_words_iou(texts: Sequence[str]) -> np.ndarray:
    """Jaccard similarity of word sets: |A & B| / |A | B|."""
    words = []
    for i, text in enumerate(texts):
        tokens = frozenset(_WORD.findall(str(text).lower()))
        if not tokens:
            raise RejectedInput("empty report", f"report index {i} has no words")
        words.append(tokens)
    n = len(words)
    sim = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            sim[i, j] = sim[j, i] = len(words[i] & words[j]) / len(words[i] | words[j])
    return sim
