"""Classifier metrics of generated images (chambon2022 Tables 1/5/6, chen2024 Table 2, choksi2025's extra AUC):
a chest X-ray classifier scores each generated image for the labels of the report that prompted it.

Two scorers, named explicitly (rules/evaluate.smk `classifier_metrics`):
- ``xrv-densenet121``: torchxrayvision's DenseNet-121 from the configured local file (config xrv_weights), its
  calibrated outputs for the CheXpert labels it has;
- ``classifier``: the project's own classifier, the "judge" (medsynth.classifier.judge; rule train_classifier) --
  the labelled stand-in where the torchxrayvision weights are absent. It scores at its own validation-chosen
  thresholds, refuses labels whose held-out AUC is below its floor (the reason is recorded in their place) and
  carries its held-out AUC table (95 % bootstrap intervals) into every result it scores.

Where the samples table keeps each prompt's real image (`source_image`), the same classifier also scores the real
images (the ceiling a generator is measured against) and the cosine similarity of its penultimate features between
each generated image and its real counterpart is reported (chambon2022 Table 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..errors import MedsynthError
from .stand_ins import is_stand_in
from .classification import auc_with_ci, cosine_similarity, per_label_metrics

SCORERS = ("classifier", "xrv-densenet121")


@dataclass
class Scorer:
    backbone: str
    weights_sha256: str
    labels: list[str]
    image_size: int
    uncertain: str
    predict: Callable[[torch.Tensor], np.ndarray]     # N x 1 x S x S in [0, 1] -> N x len(labels) scores
    features: Callable[[torch.Tensor], np.ndarray]    # -> N x d penultimate features
    card: dict | None = None                          # the judge's card (thresholds, held-out table, floor)

    @property
    def provenance(self) -> dict:
        out = {"backbone": self.backbone, "weights_sha256": self.weights_sha256,
               "stand_in": is_stand_in(self.backbone), "input_size": self.image_size}
        if self.card and self.card.get("heldout"):
            from ..classifier.judge import judge_provenance

            out["judge"] = judge_provenance(self.card, self.labels)
        return out

    def refusals(self, labels: list[str]) -> dict[str, str]:
        """{label: reason} of labels this scorer must not score (the judge's held-out AUC below its floor)."""
        if not self.card:
            return {}
        from ..classifier.judge import refusals

        return refusals(self.card, labels)

    def thresholds(self, labels: list[str], default: float = 0.5) -> dict[str, float]:
        """Operating threshold per label: the judge's validation-chosen ones, else `default`."""
        own = (self.card or {}).get("thresholds") or {}
        return {lab: float(own.get(lab, default)) for lab in labels}

    def metrics(self, y: np.ndarray, scores: np.ndarray, labels: list[str], default_threshold: float = 0.5,
                n_boot: int = 1000) -> dict:
        """per_label_metrics of `scores` (N x len(labels)) at this scorer's thresholds, each defined AUC with its
        95 % percentile-bootstrap interval over images (`auc_ci`, seeded: a handful of positives shows as a wide
        interval, not as a finding); a refused label keeps its place with every metric None and its reason under
        "refused" (the macro means leave it out)."""
        refused = self.refusals(labels)
        keep = [j for j, lab in enumerate(labels) if lab not in refused]
        kept = [labels[j] for j in keep]
        out = (per_label_metrics(y[:, keep], scores[:, keep], kept, self.thresholds(kept, default_threshold)) if kept
               else {"macro": {k: None for k in ("accuracy", "precision", "recall", "f1", "auc")} | {"auc_labels": 0}})
        for j in keep:
            if out[labels[j]]["auc"] is not None:
                out[labels[j]]["auc_ci"] = auc_with_ci(y[:, j], scores[:, j], n_boot=n_boot, seed=0)["ci"]
        for j, lab in enumerate(labels):
            if lab in refused:
                out[lab] = {"n": int(len(y)), "positives": int(y[:, j].sum()), "auc": None, "accuracy": None,
                            "precision": None, "recall": None, "f1": None, "refused": refused[lab]}
        if refused:
            out["macro"]["refused_labels"] = sorted(refused)
        return out


def load_scorer(kind: str, weights: str | os.PathLike | None, card: str | os.PathLike | None = None,
                labels: list[str] | None = None, uncertain: str = "positive") -> Scorer:
    """`labels`: CheXpert labels to score (default: all the scorer has)."""
    if kind == "classifier":
        from ..classifier.train import load_classifier, predict

        if not weights or not card:
            raise MedsynthError("scorer 'classifier' needs the trained classifier's weights and card")
        model, meta = load_classifier(Path(weights), Path(card))
        have = list(meta["labels"])
        wanted = labels or have
        missing = [lab for lab in wanted if lab not in have]
        if missing:
            raise MedsynthError(f"the classifier was not trained on {missing} (it has {have})")
        cols = [have.index(lab) for lab in wanted]

        def feats(x):
            with torch.no_grad():
                return np.concatenate([model.features(x[i:i + 64]).numpy() for i in range(0, len(x), 64)])

        from .inception import sha256_file

        return Scorer(f"classifier:{meta['arch']}", sha256_file(weights), list(wanted), int(meta["image_size"]),
                      meta.get("uncertain", uncertain), lambda x: predict(model, x)[:, cols], feats, card=meta)
    if kind == "xrv-densenet121":
        from ..classifier.xrv import XRV_INPUT_SIZE, XRV_TO_CHEXPERT, load_xrv_densenet, xrv_features, xrv_predict

        if not weights:
            raise MedsynthError("scorer 'xrv-densenet121' needs the config key xrv_weights (a local file)")
        model, sha = load_xrv_densenet(Path(weights))
        have = [XRV_TO_CHEXPERT[p] for p in model.pathologies if p in XRV_TO_CHEXPERT]
        wanted = labels or have

        def feats(x):
            return np.concatenate([xrv_features(model, x[i:i + 32]).numpy() for i in range(0, len(x), 32)])

        return Scorer("xrv-densenet121", sha, list(wanted), XRV_INPUT_SIZE, uncertain,
                      lambda x: xrv_predict(model, x, list(wanted)), feats)
    raise MedsynthError(f"unknown scorer '{kind}'; choose one of {', '.join(SCORERS)}")


def scorable_labels(scorer: Scorer, samples: pd.DataFrame) -> list[str]:
    """The scorer's labels that the samples table carries (the prompting reports' CheXpert labels)."""
    labels = [lab for lab in scorer.labels if lab in samples.columns]
    if not labels:
        raise MedsynthError(f"the samples table has none of the scorer's labels {scorer.labels}: classifier metrics "
                            "need a prompt set drawn from the manifest's reports (prompt set 'splits:')")
    return labels


def score_samples(scorer: Scorer, samples: pd.DataFrame, folder: str | os.PathLike,
                  results: str | os.PathLike | None = None, threshold: float = 0.5) -> dict:
    """Per-label AUC/accuracy/F1/precision/recall (+ macro) of generated images against their prompts' labels; the
    same for the real source images and the paired feature cosine similarity where `source_image` exists."""
    from ..classifier.data import image_batch, label_targets

    if samples.empty:
        raise MedsynthError("no generated images to score")
    labels = scorable_labels(scorer, samples)
    cols = [scorer.labels.index(lab) for lab in labels]
    y = label_targets(samples, labels, scorer.uncertain)
    gen_x = image_batch([Path(folder) / f for f in samples["file"]], scorer.image_size)
    out = {"labels": labels, "n": len(samples), "threshold": scorer.thresholds(labels, threshold),
           "uncertain": scorer.uncertain, "generated": scorer.metrics(y, scorer.predict(gen_x)[:, cols], labels,
                                                                         threshold),
           "refused": scorer.refusals(labels), **scorer.provenance}
    if results is not None and "source_image" in samples.columns:
        real_x = image_batch([Path(results) / f for f in samples["source_image"]], scorer.image_size)
        out["real"] = scorer.metrics(y, scorer.predict(real_x)[:, cols], labels, threshold)
        fg, fr = scorer.features(gen_x), scorer.features(real_x)
        ok = (np.linalg.norm(fg, axis=1) > 0) & (np.linalg.norm(fr, axis=1) > 0)  # ReLU features can be all 0
        cos = cosine_similarity(fg[ok], fr[ok]) if ok.any() else np.array([])
        out["feature_cosine"] = {"mean": float(cos.mean()) if cos.size else None,
                                 "std": float(cos.std()) if cos.size else None, "n": int(cos.size),
                                 "excluded_zero_feature_pairs": int((~ok).sum())}
    return out
