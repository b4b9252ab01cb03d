"""Prompt sets of a model entry (`models: <m>: prompt_sets:`): what the generic `sample` rule generates."""
from __future__ import annotations

from ..errors import MedsynthError


def resolve_prompt_set(spec: dict, df=None):
    """A prompt set -> table of (prompt, seed[, source row]). Either `prompts: [...]` (each sampled
    `n_per_prompt` times with seeds seed, seed+1, ...; a mapping name -> prompt adds the `prompt_name` column)
    or `splits: [...]` (the reports of those manifest splits, each kept with its id, real image and labels, for
    paired and label-based evaluation; `limit` keeps the first rows). Named prompts may carry `labels: {name:
    {label: value}}`, the labels each prompt asserts (a label another prompt names is 0 where this one does not), so
    that classifier_metrics scores them like report-drawn samples: a designed, balanced prompt set."""
    import pandas as pd

    from ..training.stage_setup import split_rows

    n, seed = int(spec.get("n_per_prompt", 1)), int(spec.get("seed", 0))
    if bool(spec.get("prompts")) == bool(spec.get("splits")):
        raise MedsynthError("a prompt set gives exactly one of 'prompts' or 'splits'")
    if spec.get("prompts"):
        prompts = spec["prompts"]
        labels = spec.get("labels") or {}
        if labels and not isinstance(prompts, dict):
            raise MedsynthError("prompt set 'labels' needs named prompts (prompts: {name: text})")
        if isinstance(prompts, dict):  # named prompts: one job samples them all, each row keeps its prompt's name
            unknown = sorted(set(labels) - set(prompts))
            if unknown:
                raise MedsynthError(f"prompt set 'labels' names prompts it does not have: {unknown}")
            columns = list(dict.fromkeys(lab for per in labels.values() for lab in per))
            return pd.DataFrame([{"prompt_name": name, "prompt": p, "seed": seed + k,
                                  **{lab: float((labels.get(name) or {}).get(lab, 0)) for lab in columns}}
                                 for name, p in prompts.items() for k in range(n)])
        return pd.DataFrame([{"prompt": p, "seed": seed + k} for p in prompts for k in range(n)])
    if df is None:
        raise MedsynthError("a prompt set drawn from splits needs the dataset manifest")
    src = split_rows(df, spec["splits"])
    if spec.get("limit"):
        src = src.head(int(spec["limit"]))
    keep = [c for c in src.columns if c not in ("source", "mask_source")]
    reps = [src[keep].assign(seed=seed + k, source_id=src["id"], source_image=src["image"]) for k in range(n)]
    return pd.concat(reps, ignore_index=True).drop(columns=["id", "image"])
