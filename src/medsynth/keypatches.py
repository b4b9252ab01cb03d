"""Key patches (chen2024 Module 2: the visual codebook): for each anatomy / pathology word, the image patches that
match it best, with their features and VQ codes.

The paper scores word-patch similarity with pretrained image and text encoders (AdaMatch). Here the patch features
are the trained VQ encoder's latents (one per token position, i.e. one patch of image_size / grid pixels), and a word
acts where it acts: at each grid position p, its direction d(p) is the mean patch feature of the images whose reports
mention the word (negations removed) minus that of the images whose reports do not. A patch's word-patch similarity
is the cosine of its feature, less the non-mentioning mean at its position, with d(p), weighted by the effect size
||d(p)|| / (spread of the features at p within the two groups) over its largest value: the patches that look like
the word's change where the word changes the image most reliably (the raw ||d|| favoured the image border, where
padding varies from film to film whatever the report says). (A single
direction over all positions, our first version, ranked the brightest patches anywhere: on the phantom its
"effusion" key patches lay in the top row, where no effusion is.) Each word keeps its top `top` patches among the
images that mention it; a word in fewer than `min_reports` reports (or absent from fewer) has no contrast and none.
Words in every report (the "lungs" of a cohort that always describes them) therefore have no key patches.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .anatomy_pathology import positive_words
from .errors import MedsynthError


def patch_features(vq, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, 1, H, W) in [-1, 1] -> features (B, g, g, C) (VQ encoder latents) and codes (B, g, g)."""
    with torch.no_grad():
        h = vq.encode(images.to(vq.device)).latents
        _, _, (_, _, idx) = vq.quantize(h)
    b, c, g, _ = h.shape
    return h.permute(0, 2, 3, 1).cpu().numpy(), idx.reshape(b, g, g).cpu().numpy()


def key_patches(features: np.ndarray, codes: np.ndarray, reports: list[str], vocab: pd.DataFrame,
                top: int = 5, min_reports: int = 3) -> pd.DataFrame:
    """One row per (word, kept patch): word, category, image index, row, col, similarity, effect, code, n_reports.
    `effect` is the word's effect size at the patch's position (comparable across words; `similarity` ranks
    patches within a word). A word named in fewer than `min_reports` reports, or missing from fewer than that, has
    no contrast to measure (one mentioning image would make its own noise the direction) and gets no rows."""
    b, g, _, c = features.shape
    if len(reports) != b:
        raise MedsynthError(f"{b} images but {len(reports)} reports")
    flat = features.reshape(b, g * g, c).astype(np.float64)
    words = [set(positive_words(r)) for r in reports]
    tiny = np.finfo(np.float64).tiny
    rows = []
    for word, category in zip(vocab["word"], vocab["category"]):
        has = np.array([word in w for w in words])
        if min(has.sum(), (~has).sum()) < max(1, min_reports):
            continue
        base = flat[~has].mean(0)                                       # (g*g, c): the position's usual look
        direction = flat[has].mean(0) - base                            # (g*g, c): what the word changes there
        within = np.concatenate([flat[has] - flat[has].mean(0), flat[~has] - base])
        spread = np.sqrt((within ** 2).sum(-1).mean(0))                 # (g*g,): how much images vary there
        norm = np.linalg.norm(direction, axis=-1)
        strength = norm / np.maximum(spread, tiny)                      # an effect size, not a raw difference
        dev = flat[has] - base                                          # (n_has, g*g, c)
        cos = (dev * direction).sum(-1) / np.maximum(np.linalg.norm(dev, axis=-1) * norm, tiny)
        sim = cos * strength / max(strength.max(), tiny)                # (n_has, g*g)
        img_idx = np.flatnonzero(has)
        order = np.argsort(-sim, axis=None, kind="stable")[:top]
        for flat_i in order:
            i, p = divmod(int(flat_i), g * g)
            rows.append({"word": word, "category": category, "image": int(img_idx[i]), "row": p // g,
                         "col": p % g, "similarity": float(sim[i, p]), "effect": float(strength[p]),
                         "code": int(codes[img_idx[i]].flat[p]), "n_reports": int(has.sum())})
    return pd.DataFrame(rows, columns=["word", "category", "image", "row", "col", "similarity", "effect", "code",
                                       "n_reports"])
