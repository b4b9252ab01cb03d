"""Train a model entry on a selected subset of its dataset, with its own prompts (config `models: <m>: rows:`).

    rows:
      per_label: {"No Finding": 5, "Pleural Effusion": 5}   # images per label (null: every image with the label)
      val_per_label: {"No Finding": 2, "Pleural Effusion": 2}   # validation images (default: per_label)
      prompts: {"No Finding": "a photo of a lung xray",       # prompt of each label's images: one string, or a
                "Pleural Effusion": "a photo of a lung xray with a visible pleural effusion"}  # list (seeded pick)
      exclusive: false    # true: an image counts for a label only if no other selected label is positive in it
      seed: 0

Training images come from the manifest's train split, validation images from its val split (test stays held
out). A label is positive where its column is 1 (CheXpert: -1 uncertain and NaN unmentioned are not). Labels are
filled in the order given, an image is taken once. The selection is seeded and recorded: which images, for which
label, and why a label got fewer images than asked (the split has fewer) — never silently.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MedsynthError

SPLITS = {"train": "per_label", "val": "val_per_label"}


def _counts(spec: dict, key: str) -> dict:
    counts = spec.get(key)
    if counts is None and key == "val_per_label":
        counts = spec.get("per_label")
    if not isinstance(counts, dict) or not counts:
        raise MedsynthError(f"rows.{key} must map label -> number of images (null: all), got {counts!r}")
    for label, n in counts.items():
        if n is not None and (not isinstance(n, int) or n < 0):
            raise MedsynthError(f"rows.{key}['{label}'] must be a non-negative integer or null, got {n!r}")
    return counts


def _prompt_for(spec: dict, label: str) -> list[str]:
    prompts = spec.get("prompts") or {}
    if label not in prompts:
        raise MedsynthError(f"rows.prompts has no prompt for label '{label}'; every selected label needs one")
    value = prompts[label]
    value = [value] if isinstance(value, str) else list(value)
    if not value or not all(isinstance(p, str) and p for p in value):
        raise MedsynthError(f"rows.prompts['{label}'] must be a non-empty string or list of strings")
    return value


def select_rows(manifest: pd.DataFrame, spec: dict, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """(rows, record): the selected manifest rows with `prompt` replaced by the label's prompt and the columns
    `selected_for` (label) and `original_prompt`; record = counts asked/found/taken per split and label, the
    selected ids and every shortfall."""
    seed = int(spec.get("seed", seed))
    exclusive = bool(spec.get("exclusive", False))
    counts = {split: _counts(spec, key) for split, key in SPLITS.items()}
    labels = list(dict.fromkeys([*counts["train"], *counts["val"]]))
    missing = [lab for lab in labels if lab not in manifest.columns]
    if missing:
        raise MedsynthError(f"rows: label column(s) {missing} are not in the dataset's manifest")
    prompts = {lab: _prompt_for(spec, lab) for lab in labels}
    positive = {lab: manifest[lab].astype(float).eq(1.0).to_numpy() for lab in labels}
    parts, record = [], {"seed": seed, "exclusive": exclusive, "splits": {}, "shortfalls": []}
    for split in SPLITS:
        rng = np.random.default_rng([seed, list(SPLITS).index(split)])
        in_split = manifest["split"].eq(split).to_numpy()
        taken = np.zeros(len(manifest), dtype=bool)
        split_rec = {}
        for label, n in counts[split].items():
            ok = in_split & positive[label] & ~taken
            if exclusive:
                for other in labels:
                    if other != label:
                        ok &= ~positive[other]
            candidates = np.flatnonzero(ok)
            want = len(candidates) if n is None else n
            pick = np.sort(rng.permutation(candidates)[:want]) if len(candidates) else candidates
            taken[pick] = True
            rows = manifest.iloc[pick].copy()
            rows["original_prompt"] = rows["prompt"] if "prompt" in rows else ""
            choice = rng.integers(len(prompts[label]), size=len(rows))
            rows["prompt"] = [prompts[label][k] for k in choice]
            rows["selected_for"] = label
            parts.append(rows)
            split_rec[label] = {"asked": n, "candidates": int(len(candidates)), "taken": int(len(rows)),
                                "ids": rows["id"].astype(str).tolist() if "id" in rows else pick.tolist()}
            if n is not None and len(rows) < n:
                record["shortfalls"].append(
                    f"{split}: '{label}' asked {n} image(s), the split has {len(candidates)} "
                    f"{'exclusively ' if exclusive else ''}positive one(s) not already taken: took {len(rows)}")
        record["splits"][split] = split_rec
    out = pd.concat(parts, ignore_index=True) if parts else manifest.iloc[:0]
    for split in SPLITS:
        if not out["split"].eq(split).any():
            raise MedsynthError(f"rows: nothing selected in the {split} split ({record['shortfalls']}); a model "
                                "entry needs training and validation images")
    record["n_rows"] = {split: int(out["split"].eq(split).sum()) for split in SPLITS}
    return out.reset_index(drop=True), record
