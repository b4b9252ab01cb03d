"""Streaming feature statistics: memory stays constant however many images pass through.

- mean and covariance by Chan's parallel update in float64 (running sums of outer products, stable against the
  cancellation that a plain sum(x x^T) - n mu mu^T suffers when features have a large mean);
- a bounded, seeded reservoir sample of features (Algorithm R) for KID, which needs features not moments;
- per-split sums for the Inception Score: image k goes to split k mod S; for each split we keep the count, the sum
  of p(y|x) and the sum of sum_y p log p, which is enough for exp(E_x KL(p(y|x) || p(y))) exactly.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import MedsynthError
from ..io import atomic_path


# How to use reference statistics made elsewhere (pytorch-fid's `--save-stats`: keys mu and sigma only).
DECLARE_HOW = ("declare its provenance in the config: metrics: {reference_stats: [{dataset: <dataset>, split: "
               "<split>, file: <path.npz>, backbone: inception-fid, dims: 2048, resize: native, "
               "declared_by_user: true}]} (optionally weights_sha256 of the weights it was made with)")


class FeatureStats:
    def __init__(self, dims: int, reservoir_size: int = 10000, is_splits: int = 10, seed: int = 0):
        self.dims = dims
        self.n = 0
        self.mean = np.zeros(dims, dtype=np.float64)
        self.m2 = np.zeros((dims, dims), dtype=np.float64)
        self.reservoir_size = reservoir_size
        self.reservoir = np.zeros((0, dims), dtype=np.float32)  # grows up to reservoir_size rows
        self._rng = np.random.default_rng(seed)
        self.is_splits = is_splits
        self.is_count = np.zeros(is_splits, dtype=np.int64)
        self.is_psum: np.ndarray | None = None  # (splits, classes), allocated when logits arrive
        self.is_plogp = np.zeros(is_splits, dtype=np.float64)

    def update(self, feats: np.ndarray, logits: np.ndarray | None = None) -> None:
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.dims:
            raise MedsynthError(f"features must be N x {self.dims}, got {feats.shape}")
        if not np.isfinite(feats).all():
            raise MedsynthError("non-finite Inception features (NaN/inf input image?)")
        nb = feats.shape[0]
        if nb == 0:
            return
        mean_b = feats.mean(axis=0)
        centred = feats - mean_b
        m2_b = centred.T @ centred
        n_tot = self.n + nb
        delta = mean_b - self.mean
        self.m2 += m2_b + np.outer(delta, delta) * (self.n * nb / n_tot)
        self.mean += delta * (nb / n_tot)
        self._reservoir_add(feats.astype(np.float32))
        if logits is not None:
            self._is_add(np.asarray(logits, dtype=np.float64))
        self.n = n_tot

    def _reservoir_add(self, feats: np.ndarray) -> None:
        cap = self.reservoir_size
        fill = max(0, min(cap - self.n, len(feats)))
        if fill:
            self.reservoir = np.concatenate([self.reservoir, feats[:fill]])
        for i in range(fill, len(feats)):
            t = self.n + i  # global index of this sample
            j = int(self._rng.integers(0, t + 1))
            if j < cap:
                self.reservoir[j] = feats[i]

    def _is_add(self, logits: np.ndarray) -> None:
        if self.is_psum is None:
            self.is_psum = np.zeros((self.is_splits, logits.shape[1]), dtype=np.float64)
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        splits = (self.n + np.arange(len(p))) % self.is_splits
        for s in range(self.is_splits):
            sel = splits == s
            self.is_count[s] += int(sel.sum())
            self.is_psum[s] += p[sel].sum(axis=0)
            self.is_plogp[s] += float((p[sel] * logp[sel]).sum())

    # -- derived statistics -------------------------------------------------------------------------------------
    @property
    def mu(self) -> np.ndarray:
        return self.mean.copy()

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased covariance, as np.cov(acts, rowvar=False) in pytorch-fid."""
        if self.n < 2:
            raise MedsynthError(f"need at least 2 images for a covariance, got {self.n}")
        return self.m2 / (self.n - 1)

    def kid_features(self) -> np.ndarray:
        return self.reservoir

    def inception_score(self) -> tuple[float, float]:
        """(mean, std) over splits of exp(mean_x KL(p(y|x) || p(y)))."""
        if self.is_psum is None:
            raise MedsynthError("Inception Score needs the 1008-way logits: compute features with dims=2048")
        if (self.is_count < 1).any():
            raise MedsynthError(f"Inception Score with {self.is_splits} splits needs at least {self.is_splits} images")
        scores = []
        for s in range(self.is_splits):
            py = self.is_psum[s] / self.is_count[s]
            # E_x KL(p||py) = E_x[sum p log p] - sum_y py log py
            kl = self.is_plogp[s] / self.is_count[s] - float(np.sum(py * np.log(np.clip(py, 1e-300, None))))
            scores.append(np.exp(kl))
        return float(np.mean(scores)), float(np.std(scores))

    # -- pytorch-fid compatible cache -----------------------------------------------------------------------------
    def save_npz(self, path: str | os.PathLike, meta: dict | None = None, **arrays: np.ndarray) -> None:
        """mu/sigma under pytorch-fid's keys (so `python -m pytorch_fid ref.npz dir` reads it) plus n, the KID
        reservoir, a JSON metadata string and any extra arrays (e.g. sigma_sqrt)."""
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, mu=self.mu, sigma=self.sigma, n=np.int64(self.n), kid_features=self.kid_features(),
                         meta=np.array(json.dumps(meta or {}, sort_keys=True)), **arrays)


class CachedStats:
    """Reference statistics read back from an .npz (ours or pytorch-fid's: then only mu/sigma exist)."""

    def __init__(self, path: str | os.PathLike):
        with np.load(path, allow_pickle=False) as data:
            self.mu = data["mu"].astype(np.float64)
            self.sigma = data["sigma"].astype(np.float64)
            self.n = int(data["n"]) if "n" in data else None
            self._kid = data["kid_features"] if "kid_features" in data else None
            # PSD square root of sigma, stored with the cache so a cached FID skips one eigendecomposition
            self.sigma_sqrt = data["sigma_sqrt"].astype(np.float64) if "sigma_sqrt" in data else None
            self.meta = json.loads(str(data["meta"])) if "meta" in data else {}
        self.path = str(path)

    @property
    def has_kid_features(self) -> bool:
        return self._kid is not None

    def kid_features(self) -> np.ndarray:
        if self._kid is None:
            raise MedsynthError(f"{self.path} holds only mu/sigma (pytorch-fid format); KID needs features: "
                                "recompute the reference statistics with medsynth")
        return self._kid
