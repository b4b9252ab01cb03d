"""The generic generative-metrics step: real images of a dataset split -> cached reference statistics; generated
images of a prompt set -> FID / KID / IS (or a domain Frechet distance) against them, as provenance records.

Used by rules/evaluate.smk (`reference_stats`, `generative_metrics`), which any paper pipeline calls with a path:

    <results>/cache/metrics/reference/<dataset>/<split>/<backbone>__<resize>.npz
    <results>/eval/generative/<model>/<promptset>/<split>/<backbone>__<resize>.json

`split` is one split, several joined by "+" (``val+test``) or ``all``; `resize` is ``native`` (images go to the
backbone as they are, as pytorch-fid does) or ``<filter><size>`` (``bicubic64``: PIL resize to size x size first,
so real and generated images of different sizes are compared at one resolution).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from .fid import InceptionEvaluator, generative_records
from .images import RESIZE_FILTERS, image_batches, parse_resize, read_image  # noqa: F401 (this module's API)
from .stats import DECLARE_HOW, CachedStats  # noqa: F401 (DECLARE_HOW: this module's API)

RESIZE_PATTERN = r"native|(?:" + "|".join(RESIZE_FILTERS) + r")\d+"
SPLIT_PATTERN = r"all|[a-z]+(?:\+[a-z]+)*"


def rule_evaluator(backbone: str, resize: str, settings: dict, seed: int, cache_dir, weights=None,
                   card=None) -> InceptionEvaluator:
    """The evaluator both sides of a comparison use (rules reference_stats and generative_metrics): backbone and
    resize from the wildcards, sizes from the config's `metrics:` settings, weights/card from the rule's inputs."""
    return InceptionEvaluator.create(backbone=backbone, weights=weights, card=card, dims=settings["dims"], seed=seed,
                                     cache_dir=cache_dir, reservoir_size=settings["reservoir_size"],
                                     is_splits=settings["is_splits"], pre_resize=resize)


def select_split(df: pd.DataFrame, split: str, what: str) -> pd.DataFrame:
    """Rows of `split` ('all', one split or 'a+b'); a table without a split column only serves 'all'."""
    if split == "all":
        return df
    if "split" not in df.columns:
        raise MedsynthError(f"{what} has no 'split' column: use split 'all'")
    wanted = split.split("+")
    rows = df[df["split"].isin(wanted)]
    if rows.empty:
        raise MedsynthError(f"{what} has no rows in split(s) {wanted}")
    return rows


def reference_paths(manifest: pd.DataFrame, results: str | os.PathLike, split: str) -> list[Path]:
    rows = select_split(manifest, split, "the manifest")
    rows = rows[rows["image"].notna() & (rows["image"].astype(str) != "")]
    if rows.empty:
        raise MedsynthError(f"no images in split '{split}' of the manifest")
    return [Path(results) / p for p in rows["image"]]


def generated_paths(samples: pd.DataFrame, folder: str | os.PathLike, split: str) -> list[Path]:
    rows = select_split(samples, split, "the samples table")
    return [Path(folder) / f for f in rows["file"]]


def compute_reference(ev: InceptionEvaluator, paths: Sequence[Path], out: str | os.PathLike, dataset: str,
                      split: str, batch_size: int = 50) -> CachedStats:
    """Reference statistics of real images, written in pytorch-fid's .npz layout plus our metadata."""
    stats = ev.stats(image_batches(paths, ev.pre_resize, batch_size))
    return ev.save_reference(stats, out, dataset, split)


# -- reference statistics made elsewhere (pytorch-fid's `--save-stats`: keys mu and sigma only) ----------------------
def declared_reference(config: dict, dataset: str, split: str, backbone: str, resize: str) -> dict | None:
    """The config's declaration (metrics.reference_stats) of a ready-made statistics file for this (dataset, split,
    backbone, resize), or None. Raises at DAG time for a declaration that is not explicit or whose file is absent."""
    for i, decl in enumerate((config.get("metrics") or {}).get("reference_stats") or []):
        key = (decl.get("dataset"), decl.get("split"), decl.get("backbone"), decl.get("resize", "native"))
        if key != (dataset, split, backbone, resize):
            continue
        where = f"config error at 'metrics.reference_stats.{i}'"
        if decl.get("declared_by_user") is not True:
            raise MedsynthError(f"{where}: set declared_by_user: true to state that you vouch for the file's "
                                "backbone, dims and resize mode (a pytorch-fid .npz carries no metadata)")
        if not Path(decl.get("file", "")).is_file():
            raise MedsynthError(f"{where}.file: {decl.get('file')!r} is not a file")
        return decl
    return None


def reference_input(config: dict, results: str, dataset: str, split: str, backbone: str, resize: str) -> str:
    """The reference statistics a generative_metrics job reads: the declared file, else the cache (rule
    reference_stats)."""
    decl = declared_reference(config, dataset, split, backbone, resize)
    return decl["file"] if decl else f"{results}/cache/metrics/reference/{dataset}/{split}/{backbone}__{resize}.npz"


def declare_reference(ev: InceptionEvaluator, ref: CachedStats, declared: dict) -> CachedStats:
    """Accept statistics without metadata (pytorch-fid's .npz) on the user's declaration: the declared backbone,
    dims and resize must be this evaluator's, mu/sigma must have the declared shape, and the reference records that
    its metadata is user-declared, with the file's sha256. A file that carries our own metadata is checked as usual."""
    from .inception import sha256_file

    if ref.meta:
        ev.check_reference(ref)
        return ref
    want = {"backbone": ev.info.backbone, "dims": ev.dims, "resize": ev.pre_resize}
    have = {"backbone": declared.get("backbone"), "dims": declared.get("dims"),
            "resize": declared.get("resize", "native")}
    if have != want:
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        raise MedsynthError(f"declared reference statistics {ref.path} do not match this evaluation "
                            f"(declared vs now: {diff})")
    d = ev.dims
    if ref.mu.shape != (d,) or ref.sigma.shape != (d, d):
        raise MedsynthError(f"{ref.path}: declared dims {d} but mu has shape {ref.mu.shape} and sigma "
                            f"{ref.sigma.shape} (pytorch-fid --dims must match)")
    if not (np.isfinite(ref.mu).all() and np.isfinite(ref.sigma).all()) or not np.allclose(
            ref.sigma, ref.sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(ref.sigma).max()))):
        raise MedsynthError(f"{ref.path}: sigma is not a finite symmetric covariance matrix")
    if declared.get("weights_sha256") and declared["weights_sha256"] != ev.info.weights_sha256:
        raise MedsynthError(f"{ref.path}: declared weights_sha256 {declared['weights_sha256'][:12]}... differs from "
                            f"this evaluation's {ev.info.weights_sha256[:12]}...")
    ref.meta = {"dataset": declared.get("dataset"), "split": declared.get("split"), "backbone": ev.info.backbone,
                "weights_sha256": declared.get("weights_sha256"), "resize_mode": ev.resize_mode, "dims": d,
                "declared_by_user": True, "file": Path(ref.path).name, "file_sha256": sha256_file(ref.path)}
    return ref


def evaluate_generated(ev: InceptionEvaluator, reference: str | os.PathLike, paths: Sequence[Path],
                       batch_size: int = 50, kid_subsets: int = 100, kid_subset_size: int = 1000,
                       extra: dict | None = None, declared: dict | None = None) -> dict:
    """{metric: record dict} for generated images against reference statistics: ours (checked to come from the same
    backbone, weights, resize mode and dims) or, with `declared` (the config's metrics.reference_stats entry), a
    metadata-less pytorch-fid .npz. IS only for the Inception backbones (it needs their logits); KID only where the
    reference holds features (ours, not pytorch-fid's)."""
    ref = CachedStats(reference)
    if declared:
        declare_reference(ev, ref, declared)
    else:
        ev.check_reference(ref)
    gen = ev.stats(image_batches(paths, ev.pre_resize, batch_size))
    keys = ("dataset", "split") + (("declared_by_user", "file", "file_sha256", "weights_sha256") if declared else ())
    meta = {k: ref.meta[k] for k in keys if k in ref.meta}
    extra = {"reference": {**meta, "n": ref.n}, **(extra or {})}
    with_is = gen.is_psum is not None and gen.n >= gen.is_splits
    if gen.is_psum is not None and not with_is:
        extra["inception_score"] = f"not computed: {gen.n} images < {gen.is_splits} splits (metrics.is_splits)"
    records = generative_records(ev, ref, gen, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                 inception_score=with_is, extra=extra)
    return {r.metric: r.to_dict() for r in records}
