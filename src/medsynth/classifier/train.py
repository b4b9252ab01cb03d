"""Train the project's own classifier on a dataset's training split and evaluate it on the held-out split.

Training keeps each finding visible (small affine jitter and exposure changes, never a flip: laterality matters),
balances rare labels (positive weights), keeps the epoch with the best validation AUC (early stopping with
`patience`) and picks each label's operating threshold on the validation split (Youden's J), never on the test
split. Deterministic on CPU for a fixed seed. Saved as safetensors + a JSON card (labels, arch, input size,
thresholds, data)."""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..io import atomic_path, write_json
from .data import image_batch, label_targets, trainable_labels
from .model import build_classifier

log = logging.getLogger(__name__)

DEFAULTS = {"arch": "small_cnn", "image_size": 128, "epochs": 8, "batch_size": 32, "lr": 1e-3,
            "weight_decay": 1e-4, "uncertain": "positive", "augment": True, "patience": 0}


def _images(df: pd.DataFrame, results: Path, size: int) -> torch.Tensor:
    return image_batch([results / p for p in df["image"]], size)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild jitter that keeps a finding where it is and visible: rotation +-3 deg, scale +-3 %, shift +-3 %,
    exposure (gamma 0.9-1.1, brightness +-2 %). No flips (laterality matters). Stronger jitter than this hides
    the phantom's small findings (an 18 mm nodule is ~7 pixels at 128 px) and stalls training."""
    n = len(x)
    u = torch.rand(n, 6, generator=gen) * 2 - 1
    ang, scale = u[:, 0] * math.radians(3), 1 + 0.03 * u[:, 1]
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, 0.03 * u[:, 2]], 1), torch.stack([sin, cos, 0.03 * u[:, 3]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(0, 1)
    out = out ** torch.exp(u[:, 4] * math.log(1.1)).view(n, 1, 1, 1)
    return (out + 0.02 * u[:, 5].view(n, 1, 1, 1)).clamp(0, 1)


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float | None:
    """The score threshold maximising sensitivity + specificity - 1 (None without both classes)."""
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, thr = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def _macro_auc(y: np.ndarray, prob: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y[:, j], prob[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2]
    return float(np.mean(aucs)) if aucs else None


def train_classifier(df: pd.DataFrame, results: Path, cfg: dict, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    cfg = {**DEFAULTS, **(cfg or {})}
    train = df[df["split"] == "train"].reset_index(drop=True)
    val = df[df["split"] == "val"].reset_index(drop=True)
    labels = cfg.get("labels") or trainable_labels(train)
    if not labels:
        raise ValueError("no label has both positive and negative training examples")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = _images(train, results, cfg["image_size"])
    y = torch.from_numpy(label_targets(train, labels, cfg["uncertain"]))
    xv = _images(val, results, cfg["image_size"]) if len(val) else None
    yv = label_targets(val, labels, cfg["uncertain"]) if len(val) else None
    model = build_classifier(cfg["arch"], len(labels))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg["epochs"]))
    pos = y.mean(0).clamp(0.02, 0.98)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)  # balance rare findings
    history, val_auc, best = [], [], (-1.0, 0, None)
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg["batch_size"]):
            idx = order[i:i + cfg["batch_size"]]
            xb = augment(x[idx], gen) if cfg["augment"] else x[idx]
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        history.append(total / len(x))
        score = _macro_auc(yv, predict(model.eval(), xv)) if xv is not None else None
        val_auc.append(score)
        log.info("epoch %d loss %.4f val macro AUC %s", epoch, history[-1], score)
        if score is not None and score > best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        elif score is not None and cfg["patience"] and epoch - best[1] >= cfg["patience"]:
            log.info("early stop: no better validation AUC for %d epochs", cfg["patience"])
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    thresholds, threshold_source = {lab: 0.5 for lab in labels}, {lab: "fixed 0.5 (no validation split)" for lab in labels}
    if xv is not None:
        pv = predict(model, xv)
        for j, lab in enumerate(labels):
            t = youden_threshold(yv[:, j], pv[:, j])
            thresholds[lab] = 0.5 if t is None else t
            threshold_source[lab] = ("fixed 0.5 (validation split has one class)" if t is None else
                                     f"Youden's J on the validation split (N={len(val)}, {int(yv[:, j].sum())} positive)")
    meta = {"arch": cfg["arch"], "labels": labels, "image_size": cfg["image_size"], "uncertain": cfg["uncertain"],
            "epochs": cfg["epochs"], "epochs_run": len(history), "best_epoch": best[1] if best[2] is not None else None,
            "seed": seed, "n_train": len(train), "n_val": len(val), "loss_history": history,
            "val_macro_auc_history": val_auc, "thresholds": thresholds, "threshold_source": threshold_source,
            "augment": bool(cfg["augment"])}
    return model, meta


def save_classifier(model: torch.nn.Module, meta: dict, weights: Path, card: Path) -> None:
    with atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    meta = {**meta, "weights_sha256": hashlib.sha256(Path(weights).read_bytes()).hexdigest()}
    write_json(meta, card)


def load_classifier(weights: Path, card: Path) -> tuple[torch.nn.Module, dict]:
    meta = json.loads(Path(card).read_text())
    model = build_classifier(meta["arch"], len(meta["labels"]))
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), meta


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    return np.concatenate([torch.sigmoid(model(images[i:i + batch])).numpy() for i in range(0, len(images), batch)])


def per_label_metrics(y_true: np.ndarray, prob: np.ndarray, labels: list[str], threshold=0.5) -> dict:
    """AUC, accuracy, F1, precision, recall per label plus their macro means (AUC is None, with the reason, where
    a split has one class only): medsynth.metrics.classification, the one implementation every table uses."""
    from ..metrics.classification import per_label_metrics as table

    return table(y_true, prob, labels, threshold)


def evaluate_classifier(model, meta: dict, df: pd.DataFrame, results: Path, split: str = "test",
                        n_boot: int = 1000) -> dict:
    """Per-label metrics on `split` at the card's validation-chosen thresholds, and each label's AUC with its 95 %
    bootstrap interval (resampling the split's images, `n_boot` times, seeded)."""
    from ..metrics.classification import auc_with_ci

    rows = df[df["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split '{split}' is empty")
    prob = predict(model, _images(rows, results, meta["image_size"]))
    y = label_targets(rows, meta["labels"], meta["uncertain"])
    thresholds = meta.get("thresholds") or 0.5
    return {"split": split, "n": len(rows), "per_label": per_label_metrics(y, prob, meta["labels"], thresholds),
            "auc_ci": {lab: auc_with_ci(y[:, j], prob[:, j], n_boot=n_boot, seed=int(meta.get("seed", 0)))
                       for j, lab in enumerate(meta["labels"])}}
