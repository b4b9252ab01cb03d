"""Train the project's own classifier on a dataset's training split and evaluate it on the held-out split.

Deterministic on CPU for a fixed seed. Saved as safetensors + a JSON card (labels, arch, input size, data)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_path, write_json
from .data import image_batch, label_targets, trainable_labels
from .model import build_classifier

log = logging.getLogger(__name__)

DEFAULTS = {"arch": "small_cnn", "image_size": 128, "epochs": 8, "batch_size": 32, "lr": 1e-3,
            "weight_decay": 1e-4, "uncertain": "positive", "augment": True}


def _images(df: pd.DataFrame, results: Path, size: int) -> torch.Tensor:
    return image_batch([results / p for p in df["image"]], size)


def train_classifier(df: pd.DataFrame, results: Path, cfg: dict, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    cfg = {**DEFAULTS, **(cfg or {})}
    train = df[df["split"] == "train"].reset_index(drop=True)
    labels = cfg.get("labels") or trainable_labels(train)
    if not labels:
        raise ValueError("no label has both positive and negative training examples")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = _images(train, results, cfg["image_size"])
    y = torch.from_numpy(label_targets(train, labels, cfg["uncertain"]))
    model = build_classifier(cfg["arch"], len(labels))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    pos = y.mean(0).clamp(0.02, 0.98)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)  # balance rare findings
    history = []
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg["batch_size"]):
            idx = order[i:i + cfg["batch_size"]]
            xb = x[idx]
            if cfg["augment"]:  # small intensity jitter; no flips (laterality matters in chest X-rays)
                xb = (xb * (1 + 0.1 * (torch.rand(len(idx), 1, 1, 1, generator=gen) - 0.5))).clamp(0, 1)
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(x))
        log.info("epoch %d loss %.4f", epoch, history[-1])
    meta = {"arch": cfg["arch"], "labels": labels, "image_size": cfg["image_size"], "uncertain": cfg["uncertain"],
            "epochs": cfg["epochs"], "seed": seed, "n_train": len(train), "loss_history": history}
    return model.eval(), meta


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


def per_label_metrics(y_true: np.ndarray, prob: np.ndarray, labels: list[str], threshold: float = 0.5) -> dict:
    """AUC, accuracy, F1, precision, recall per label plus their macro means (AUC is None, with the reason, where
    a split has one class only): medsynth.metrics.classification, the one implementation every table uses."""
    from ..metrics.classification import per_label_metrics as table

    return table(y_true, prob, labels, threshold)


def evaluate_classifier(model, meta: dict, df: pd.DataFrame, results: Path, split: str = "test") -> dict:
    rows = df[df["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split '{split}' is empty")
    prob = predict(model, _images(rows, results, meta["image_size"]))
    y = label_targets(rows, meta["labels"], meta["uncertain"])
    return {"split": split, "n": len(rows), "per_label": per_label_metrics(y, prob, meta["labels"])}
