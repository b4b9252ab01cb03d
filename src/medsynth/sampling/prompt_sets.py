"""Prompt sets of a model entry (`models: <m>: prompt_sets:`): what the generic `sample` rule generates."""
from __future__ import annotations

from ..errors import MedsynthError


def resolve_prompt_set(spec: dict, df=None):
    """A prompt set -> table of (prompt, seed[, source row]). Either `prompts: [...]` (each sampled
    `n_per_prompt` times with seeds seed, seed+1, ...; a mapping name -> prompt adds the `prompt_name` column)
    or `splits: [...]` (the reports of those manifest splits, each kept with its id, real image and labels, for
    paired and label-based evaluation; `limit` keeps the first rows)."""
    import pandas as pd

    from ..training.stage_setup import split_rows

    n, seed = int(spec.get("n_per_prompt", 1)), int(spec.get("seed", 0))
    if bool(spec.get("prompts")) == bool(spec.get("splits")):
        raise MedsynthError("a prompt set gives exactly one of 'prompts' or 'splits'")
    if spec.get("prompts"):
        prompts = spec["prompts"]
        if isinstance(prompts, dict):  # named prompts: one job samples them all, each row keeps its prompt's name
            return pd.DataFrame([{"prompt_name": name, "prompt": p, "seed": seed + k}
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
