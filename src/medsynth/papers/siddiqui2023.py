"""siddiqui2023 (generative visual attribution with latent diffusion): the thesis' tables and the ground-truth check
of its VA maps.

Training (joint U-Net + text-encoder DreamBooth), SDEdit counterfactuals (generic `edit_images` rule), FID
(`metrics.fid`), SSIM / MS-SSIM (`metrics.pairs`), VA maps (`attribution`) and their scores against lesion masks
(`metrics.localisation`) are the engine's. What stays here: which real / edited image sets each table compares,
the per-edit VA scoring against the phantom's per-finding lesion masks, and the cells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MedsynthError

PAPER = "siddiqui2023"
# Bit of each finding in the phantom's lesion-mask PNGs (medsynth.phantom.findings.FINDING_BITS), kept here as data
# so the report does not import the phantom generator.
FINDING_BITS = {"effusion": 0, "cardiomegaly": 1, "nodule": 2, "consolidation": 3, "atelectasis": 4,
                "pneumothorax": 5, "emphysema": 6}
# The CheXpert label a phantom finding sets (medsynth.phantom.cohort.CHEXPERT_MAP, first label): the classifier
# logit the gradient-saliency baseline explains.
FINDING_LABEL = {"effusion": "Pleural Effusion", "cardiomegaly": "Cardiomegaly", "nodule": "Lung Lesion",
                 "consolidation": "Consolidation", "atelectasis": "Atelectasis", "pneumothorax": "Pneumothorax"}
ARMS = {"counterfactual": "|healthy counterfactual - original|",
        "counterfactual, lung-masked": "|healthy counterfactual - original| inside the lung region",
        "null edit": "|edit with a prompt naming no finding - original| (floor)",
        "null edit, lung-masked": "|edit with a prompt naming no finding - original| inside the lung region (floor of "
                                  "the masked variant: the region alone already favours lung lesions)",
        "gradient saliency": "|d logit / d pixel| of the project's classifier (baseline)"}


def read_gray(path, size: int) -> np.ndarray:
    """An image as (size, size) float32 in [0, 1] (bilinear, antialiased resize)."""
    from ..classifier.data import load_gray

    return load_gray(path, size)[0].numpy()


def lesion_mask(path, finding: str, size: int) -> np.ndarray:
    """The finding's bit of a phantom lesion-mask PNG, as a (size, size) bool mask (nearest resize)."""
    from PIL import Image

    with Image.open(path) as im:
        bits = np.asarray(im)
    mask = ((bits.astype(np.int64) >> FINDING_BITS[finding]) & 1).astype(np.uint8) * 255
    if mask.shape != (size, size):
        mask = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
    return mask > 0


def lung_region(masks: list, size: int, threshold: float = 0.3) -> np.ndarray:
    """A lung-field atlas from real lung masks (another dataset's): the pixels inside the lungs in at least
    `threshold` of them. The phantom has no 2D lung masks; the thesis used each image's own."""
    if not masks:
        raise MedsynthError("lung region: no lung masks given")
    freq = np.mean([read_gray(m, size) > 0.5 for m in masks], axis=0)
    return freq >= threshold


def findings_of(row: dict, findings) -> list[str]:
    return [f for f in findings if float(row.get(f, 0) or 0) == 1.0 and isinstance(row.get("mask"), str)
            and row["mask"]]


def va_scores(edits: pd.DataFrame, edit_dir: Path, null: pd.DataFrame, null_dir: Path, results: Path, size: int,
              findings, sigma: float, region: np.ndarray | None, classifier=None) -> pd.DataFrame:
    """One row per (edit, finding present in its source image, arm): pixel AUROC and NCC of the arm's VA map
    against the finding's lesion mask. The null arm is the edit of the same source with the same strength and seed
    towards the null prompt; the classifier baseline depends on the source image only (one score per image)."""
    from ..attribution import difference_map, gradient_saliency
    from ..metrics.localisation import ncc, pixel_auroc

    null_key = {(r["source_id"], r["strength"], r["seed"]): r["file"] for r in null.to_dict("records")}
    model, meta = classifier if classifier else (None, None)
    out, saliency_done = [], set()
    for r in edits.to_dict("records"):
        present = findings_of(r, findings)
        if not present:
            continue
        orig = read_gray(results / r["source_image"], size)
        cf = read_gray(edit_dir / r["file"], size)
        maps = {"counterfactual": difference_map(orig, cf, sigma)}
        if region is not None:
            maps["counterfactual, lung-masked"] = difference_map(orig, cf, sigma, region=region)
        nf = null_key.get((r["source_id"], r["strength"], r["seed"]))
        if nf is not None:
            null_img = read_gray(null_dir / nf, size)
            maps["null edit"] = difference_map(orig, null_img, sigma)
            if region is not None:
                maps["null edit, lung-masked"] = difference_map(orig, null_img, sigma, region=region)
        for f in present:
            gt = lesion_mask(results / r["mask"], f, size)
            base = {"source_id": r["source_id"], "finding": f, "strength": r["strength"], "seed": r["seed"],
                    "lesion_fraction": float(gt.mean())}
            for arm, m in maps.items():
                out.append({**base, "arm": arm, "auroc": pixel_auroc(m, gt), "ncc": ncc(m, gt)})
            if model is not None and (r["source_id"], f) not in saliency_done:
                saliency_done.add((r["source_id"], f))
                label = FINDING_LABEL.get(f)
                target = meta["labels"].index(label) if label in meta["labels"] else None
                img = read_gray(results / r["source_image"], meta["image_size"])
                sal = gradient_saliency(model, img, target, sigma * meta["image_size"] / size)
                sal = np.asarray(_resize(sal, size))
                out.append({**base, "strength": None, "seed": None, "arm": "gradient saliency",
                            "auroc": pixel_auroc(sal, gt), "ncc": ncc(sal, gt),
                            "saliency_target": label if target is not None else "sum of logits"})
    return pd.DataFrame(out)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if arr.shape == (size, size):
        return arr
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))


def saliency_note(finding: str, card: dict | None) -> dict:
    """What the gradient-saliency row of a finding says about its classifier: the held-out AUC of the label it
    explains and, where the classifier refuses that label (held-out AUC below its floor), the reason: its saliency
    then explains a classifier that does not separate the finding (kept as a baseline, flagged, not dropped)."""
    from ..classifier.judge import heldout_table, refusals

    label = FINDING_LABEL.get(finding)
    if not card or label is None:
        return {}
    out = {"saliency_label": label,
           "classifier_heldout_auc": (heldout_table(card).get(label) or {}).get("auc")}
    reason = refusals(card, [label]).get(label)
    if reason:
        out["classifier_refused"] = reason
    return out


def va_cells(scores: pd.DataFrame, prov: dict, card: dict | None = None) -> list[dict]:
    """Table va_localisation: mean +- standard error over (image, seed) of pixel AUROC and NCC, per finding x arm
    (x strength for the edit arms). `card`: the classifier's card, for its held-out AUC on the saliency rows."""
    from ..metrics.localisation import mean_se
    from ..report.cells import make_cell

    cells = []
    if scores.empty:
        return cells
    for (finding, arm, strength), g in scores.groupby(["finding", "arm", scores["strength"].fillna(-1)], sort=True):
        row = f"{finding}: {arm}" + (f" (strength {strength:g})" if strength >= 0 else "")
        note = saliency_note(finding, card) if arm == "gradient saliency" else {}
        refused = (f"; the classifier refuses {note['saliency_label']} ({note['classifier_refused']}): this map "
                   "explains a classifier that does not separate the finding") if "classifier_refused" in note else ""
        for col, key in (("pixel AUROC", "auroc"), ("NCC", "ncc")):
            mean, se, n = mean_se(g[key].tolist())
            cells.append(make_cell(PAPER, "va_localisation", row, col, mean, std=se, provenance={
                **prov, **note, "n": n, "n_images": int(g["source_id"].nunique()),
                "seeds": sorted({int(s) for s in g["seed"].dropna()}),
                "method": f"{col} of the VA map {ARMS[arm]} against the phantom's {finding} lesion mask; "
                          f"value = mean over (image, seed), spread = standard error (std / sqrt(n)){refused}"}))
    return cells


def fid_between(ev, paths_a, paths_b, resize: str, memo: dict | None = None) -> float:
    """FID between two image sets. memo: a dict kept by the caller, so a set that several cells compare against
    (the real healthy images) passes through the backbone once."""
    from ..metrics.generative import image_batches

    if len(paths_a) < 2 or len(paths_b) < 2:
        raise MedsynthError(f"FID needs at least 2 images per side (got {len(paths_a)} and {len(paths_b)})")
    memo = {} if memo is None else memo

    def stats(paths):
        key = (resize, tuple(str(x) for x in paths))
        if key not in memo:
            memo[key] = ev.stats(image_batches(paths, resize))
        return memo[key]

    return ev.fid(stats(paths_a), stats(paths_b))


def ms_ssim_scales(size: int) -> int:
    """The most MS-SSIM scales (<= 5) an image of `size` px allows (11 px window at the coarsest scale)."""
    scales = 5
    while scales > 1 and size <= 10 * 2 ** (scales - 1):
        scales -= 1
    return scales

