"""FID, KID and IS with pytorch-fid's Inception, streamed, with cached reference statistics.

Inputs are images in [0, 1] (floats) or uint8; grayscale is replicated to 3 channels (as PIL's convert("RGB") does in
pytorch-fid). 3D volumes: ``metrics.volumes`` (slice-wise, each slice one grayscale image -- three adjacent slices are
never packed into the RGB channels -- and patch-wise with a 3D backbone).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from scipy import linalg

from ..errors import MedsynthError
from .images import IMAGE_EXTENSIONS, folder_batches, list_images, to_batch  # noqa: F401 (this module's API)
from .inception import BackboneInfo
from .stats import DECLARE_HOW, CachedStats, FeatureStats

# -- distances --------------------------------------------------------------------------------------------------------
def _psd_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: negatives and those below d * eps * max (what an
    eigendecomposition cannot tell from 0) become 0. Matters when there are fewer images than feature dims: the
    covariance then has a null space whose noise eigenvalues, square-rooted and summed over thousands of dims,
    would otherwise bias the trace term (e.g. FID(x, x) = -0.19 for 3 images in 1024 dims)."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0, None)
    if w.size and w.max() > 0:
        w[w < w.max() * w.size * np.finfo(np.float64).eps] = 0.0
    return w


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance matrix (rounding-noise eigenvalues set to 0)."""
    w, v = linalg.eigh(np.asarray(sigma, dtype=np.float64))
    return (v * np.sqrt(_psd_eigenvalues(w))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh", sigma1_sqrt=None) -> float:
    """||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    "eigh" (default): tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))), a symmetric PSD problem -- exact for
    covariance matrices, faster than a general sqrtm and stable when the covariances are rank-deficient (fewer
    images than feature dims). "pytorch-fid": pytorch-fid's own calculate_frechet_distance (scipy sqrtm).
    `sigma1_sqrt`: psd_sqrt(sigma1) if already known (cached reference statistics).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise MedsynthError(f"FID statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    if method == "pytorch-fid":
        from pytorch_fid.fid_score import calculate_frechet_distance

        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    if method != "eigh":
        raise MedsynthError(f"unknown Frechet distance method '{method}' (eigh, pytorch-fid)")
    s1_half = psd_sqrt(sigma1) if sigma1_sqrt is None else np.asarray(sigma1_sqrt, dtype=np.float64)
    inner = s1_half @ sigma2 @ s1_half
    tr_covmean = float(np.sqrt(_psd_eigenvalues(linalg.eigvalsh((inner + inner.T) / 2))).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def kernel_inception_distance(feats1: np.ndarray, feats2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float, int]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 over seeded random subsets (Binkowski et al. 2018, as in
    torch-fidelity). Returns (mean, std, subset size used). The size is capped at the smaller set, where
    torch-fidelity refuses; the caller records the used and requested sizes (generative_records)."""
    f1, f2 = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if f1.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise MedsynthError(f"KID features must be N x d with equal d, got {f1.shape} and {f2.shape}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise MedsynthError(f"KID needs at least 2 samples per set, got {len(f1)} and {len(f2)}")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2 * kxy.mean())
    return float(values.mean()), float(values.std()), m


# -- evaluator --------------------------------------------------------------------------------------------------------
@dataclass
class InceptionEvaluator:
    """Holds one feature backbone (Inception, torchxrayvision DenseNet or the project's classifier: see
    metrics.backbones); turns image batches into FeatureStats and stats pairs into FID/KID/IS.

    `pre_resize`: how images were brought to a common size before the backbone ("native": not at all, as
    pytorch-fid; "bicubic64": PIL bicubic to 64 x 64); part of the recorded resize mode and of the cache key."""

    model: torch.nn.Module
    info: BackboneInfo
    dims: int = 2048
    device: str = "cpu"
    reservoir_size: int = 10000
    is_splits: int = 10
    seed: int = 0
    pre_resize: str = "native"

    @classmethod
    def create(cls, backbone: str = "inception-fid", weights: str | os.PathLike | None = None, dims: int = 2048,
               device: str = "cpu", seed: int = 0, cache_dir: str | os.PathLike | None = None, card=None, **kw):
        from .backbones import load_feature_backbone

        model, info, dims = load_feature_backbone(backbone, weights, card=card, dims=dims, seed=seed,
                                                  cache_dir=cache_dir, device=device)
        return cls(model=model, info=info, dims=dims, device=device, seed=seed, **kw)

    @property
    def resize_mode(self) -> str:
        return self.info.resize_mode if self.pre_resize == "native" else f"{self.pre_resize}+{self.info.resize_mode}"

    @property
    def provenance(self) -> dict:
        """backbone, weights file + sha256, resize mode, dims, seed: what every number from this evaluator records."""
        from .stand_ins import is_stand_in

        return {"backbone": self.info.backbone, "weights": Path(self.info.weights_path).name,
                "weights_sha256": self.info.weights_sha256, "resize_mode": self.resize_mode, "dims": self.dims,
                "seed": self.seed, "stand_in": is_stand_in(self.info.backbone)}

    def stats(self, batches: Iterable) -> FeatureStats:
        stats = FeatureStats(self.dims, self.reservoir_size, self.is_splits, self.seed)
        for batch in batches:
            feats, logits = self.model(to_batch(batch).to(self.device))
            stats.update(feats.double().cpu().numpy(), None if logits is None else logits.double().cpu().numpy())
        if stats.n == 0:
            raise MedsynthError("no images to compute statistics from")
        return stats

    def folder_stats(self, folder: str | os.PathLike, batch_size: int = 50) -> FeatureStats:
        return self.stats(folder_batches(folder, batch_size))

    def cache_meta(self, dataset: str, split: str) -> dict:
        return {"dataset": dataset, "split": split, "backbone": self.info.backbone,
                "weights_sha256": self.info.weights_sha256, "resize_mode": self.resize_mode, "dims": self.dims}

    def cache_key(self, dataset: str, split: str) -> str:
        # The weights hash is part of the key: stats from another weights file are never reused by mistake.
        resize = "".join(c if c.isalnum() or c in "-+" else "-" for c in self.resize_mode)
        return (f"{dataset}__{split}__{self.info.backbone.replace(':', '-')}-{self.info.weights_sha256[:12]}__"
                f"{resize}__d{self.dims}.npz")

    def save_reference(self, stats: FeatureStats, path: str | os.PathLike, dataset: str, split: str) -> CachedStats:
        """Write reference statistics (pytorch-fid keys mu/sigma + n, KID reservoir, sqrt(sigma), metadata)."""
        stats.save_npz(path, meta={**self.cache_meta(dataset, split), "n": stats.n}, sigma_sqrt=psd_sqrt(stats.sigma))
        return CachedStats(path)

    def check_reference(self, ref: CachedStats) -> None:
        """Refuse cached statistics made with another backbone, weights file, resize mode or feature size."""
        if not ref.meta:
            raise MedsynthError(f"reference statistics {ref.path} carry no metadata (a pytorch-fid .npz?), so the "
                                f"backbone, weights, dims and resize they were made with cannot be checked; "
                                f"{DECLARE_HOW}")
        want = {k: v for k, v in self.cache_meta("", "").items() if k not in ("dataset", "split")}
        have = {k: ref.meta.get(k) for k in want}
        if have != want:
            diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
            raise MedsynthError(f"reference statistics {ref.path} were made with different settings "
                                f"(cached vs now: {diff}); delete the file to recompute")

    def reference_stats(self, cache_dir: str | os.PathLike, dataset: str, split: str,
                        batches_fn) -> FeatureStats | CachedStats:
        """Cached reference statistics keyed by (dataset, split, backbone + weights, resize mode, dims);
        `batches_fn()` is only called (and the cache written) on a miss."""
        path = Path(cache_dir) / self.cache_key(dataset, split)
        if not path.exists():
            return self.save_reference(self.stats(batches_fn()), path, dataset, split)
        ref = CachedStats(path)
        self.check_reference(ref)
        return ref

    def fid(self, a, b, method: str = "eigh") -> float:
        # FID is symmetric: put the side with a cached square root first.
        if getattr(a, "sigma_sqrt", None) is None and getattr(b, "sigma_sqrt", None) is not None:
            a, b = b, a
        return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method,
                                sigma1_sqrt=getattr(a, "sigma_sqrt", None))

    def kid(self, a, b, subsets: int = 100, subset_size: int = 1000) -> tuple[float, float, int]:
        return kernel_inception_distance(a.kid_features(), b.kid_features(), subsets, subset_size, self.seed)


FeatureEvaluator = InceptionEvaluator  # the same class serves every backbone in metrics.backbones


def generative_records(ev: InceptionEvaluator, ref, gen, kid_subsets: int = 100, kid_subset_size: int = 1000,
                       inception_score: bool = True, extra: dict | None = None) -> list:
    """FID, KID (mean, std over subsets) and optionally IS of `gen` as MetricRecords carrying the backbone,
    weights hash, resize mode, seed and image counts."""
    from .provenance import MetricRecord

    common = dict(backbone=ev.info.backbone, weights_sha256=ev.info.weights_sha256, resize_mode=ev.resize_mode,
                  seed=ev.seed)
    counts = {"n_reference": ref.n, "n_generated": gen.n, "dims": ev.dims,
              "weights": Path(ev.info.weights_path).name, "stand_in": ev.provenance["stand_in"], **(extra or {})}
    space = "Inception pool" if ev.info.backbone.startswith("inception") else f"{ev.info.backbone}"
    with_kid = getattr(ref, "has_kid_features", True)
    if not with_kid:
        counts["kid"] = "not computed: the reference statistics hold only mu/sigma (pytorch-fid format), no features"
    records = [
        MetricRecord(metric="fid", value=ev.fid(ref, gen), n=gen.n, extra=counts,
                     definition=f"Frechet distance of {space} features (pytorch-fid formula, eigh trace)",
                     **common),
    ]
    if with_kid:
        kid, kid_std, m = ev.kid(ref, gen, kid_subsets, kid_subset_size)
        capped = (f"; subset size {m}, capped from the requested {kid_subset_size} at the smaller set "
                  "(torch-fidelity refuses a subset larger than a set)" if m < kid_subset_size else
                  f"; subset size {m}")
        records.append(MetricRecord(metric="kid", value=kid, std=kid_std, n=gen.n,
                                    extra={**counts, "subsets": kid_subsets, "subset_size": m,
                                           "subset_size_requested": kid_subset_size},
                                    definition="unbiased MMD^2, kernel (x.y/d + 1)^3, mean/std over seeded subsets"
                                               + capped, **common))
    if inception_score:
        is_mean, is_std = gen.inception_score()
        records.append(MetricRecord(metric="is", value=is_mean, std=is_std, n=gen.n,
                                    extra={**counts, "splits": gen.is_splits, "split_assignment": "round-robin"},
                                    definition="exp E KL(p(y|x) || p(y)), 1008-way bias-free logits, "
                                               "image k in split k mod S (streaming; torch-fidelity shuffles with "
                                               "a fixed seed and cuts contiguous splits: same estimator, other "
                                               "split membership, so mean and std differ slightly)", **common))
    return records
