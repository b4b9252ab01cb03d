"""Edit sets of a model entry (`models: <m>: edit_sets:`): which real images the generic `edit_images` rule edits
(SDEdit / img2img), towards which prompts, at which strengths and seeds.

    edit_sets:
      healthy:                          # diseased -> healthy counterfactuals
        splits: [val, test]             # source rows: these manifest splits ...
        labels: ["Pleural Effusion"]    # ... positive (== 1) for one of these labels (filled in order, an image once);
        per_label: 8                    #     images per label (null: all), a seeded pick
        exclusive: false                # true: only images positive for no other listed label
        label_column: null              # a column of class names (e.g. class_name): `labels` are its values instead
        prompts: ["normal chest x ray", "{effusion_side} pleural effusion"]   # format fields: the source row's columns
        strengths: [0.55, 0.85]
        seeds: [0, 1]
        steps: 50
        guidance_scale: 4.0
        sampler: pndm
        edit_mask: null                 # optional manifest column of a mask image (white = may change): masked SDEdit

One row per (source image, prompt, strength, seed): the source row's columns (its `id` as `source_id`, its image as
`source_image`, its report prompt as `source_prompt`, its lesion `mask`, labels) plus the label it was drawn for
(`source_label`), the edit's `prompt`, `strength` and `seed`.
"""
from __future__ import annotations

import string

import numpy as np

from ..errors import MedsynthError

NO_LABEL = "(any)"   # source_label of rows drawn without `labels:`


def _pick(df, spec: dict, seed: int):
    """Seeded choice of the source rows, each with the label it was drawn for."""
    import pandas as pd

    labels = list(spec.get("labels") or [])
    per_label = spec.get("per_label")
    rng = np.random.default_rng(seed)
    if not labels:
        order = rng.permutation(len(df))[: per_label if per_label is not None else len(df)]
        return df.iloc[np.sort(order)].assign(source_label=NO_LABEL)
    by = spec.get("label_column")
    missing = [c for c in ([by] if by else labels) if c not in df.columns]
    if missing:
        raise MedsynthError(f"edit set: label column(s) {missing} not in the manifest")
    positive = {lab: (df[by].astype(str).eq(lab) if by else df[lab].astype(float).eq(1.0)).to_numpy()
                for lab in labels}
    taken = np.zeros(len(df), dtype=bool)
    parts = []
    for lab in labels:
        ok = positive[lab] & ~taken
        if spec.get("exclusive"):
            for other in labels:
                if other != lab:
                    ok &= ~positive[other]
        idx = np.flatnonzero(ok)
        idx = np.sort(rng.permutation(idx)[: per_label if per_label is not None else len(idx)])
        taken[idx] = True
        parts.append(df.iloc[idx].assign(source_label=lab))
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        raise MedsynthError(f"edit set: no source image is positive for any of {labels} in the chosen splits")
    return out


def _fill(template: str, row: dict) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    absent = [f for f in fields if f not in row or row[f] is None or row[f] != row[f]]
    if absent:
        raise MedsynthError(f"edit prompt '{template}': the source row has no value for {absent}")
    return template.format_map(row).strip()


def resolve_edit_set(spec: dict, df, seed: int = 0):
    """An edit set + the dataset manifest -> the table the family's `edit` runs (one row per edit)."""
    import pandas as pd

    from ..training.stages import split_rows

    for key in ("prompts", "strengths"):
        if not spec.get(key):
            raise MedsynthError(f"an edit set needs a non-empty '{key}' list")
    bad = [s for s in spec["strengths"] if not 0.0 < float(s) <= 1.0]
    if bad:
        raise MedsynthError(f"edit set strengths must be in (0, 1], got {bad}")
    seeds = [int(s) for s in (spec.get("seeds") or [0])]
    src = split_rows(df, spec.get("splits") or ["train", "val", "test"])
    src = _pick(src, spec, int(spec.get("selection_seed", seed)))
    mask_col = spec.get("edit_mask")
    if mask_col and mask_col not in src.columns:
        raise MedsynthError(f"edit set: edit_mask column '{mask_col}' is not in the manifest")
    keep = [c for c in src.columns if c not in ("source", "mask_source", "id", "image", "prompt")]
    rows = []
    for rec, (_, row) in zip(src[keep].to_dict("records"), src.iterrows()):
        base = {**rec, "source_id": row["id"], "source_image": row["image"], "source_prompt": row.get("prompt", "")}
        if mask_col:
            base["edit_mask"] = row[mask_col] if isinstance(row[mask_col], str) and row[mask_col] else None
        for template in spec["prompts"]:
            prompt = _fill(template, row.to_dict())
            for strength in spec["strengths"]:
                for s in seeds:
                    rows.append({**base, "prompt": prompt, "prompt_template": template, "strength": float(strength),
                                 "seed": s})
    return pd.DataFrame(rows)
