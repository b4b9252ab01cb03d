"""3D domain feature distances (xing2024): slice-wise and patch-wise FID / KID (/ IS) between two sets of CT volumes.

Three adjacent slices are not an RGB image (the defect of the public DGM-VLC code), so:

- ``slice``: every ``slice_step``-th slice along ``slice_axis`` (default 2 = the axial axis of the preprocessed crops,
  which are in RAS+ voxel order) is ONE grayscale image; a 2D backbone (``metrics.backbones``: inception-fid,
  inception-random, xrv-densenet121) gives its features; FID/KID over the two slice-feature sets. The Inception
  backbones take RGB: the gray slice is replicated to 3 identical channels (what pytorch-fid's convert("RGB") does to
  a grayscale image) and every record says so; the torchxrayvision DenseNet reads the single channel. xing2024's
  Table 1 protocol ("patch-wise on 256x256x64 crops, slice-wise 2D features, 5 random crops per volume") is this mode
  with ``eval_crop: [256, 256, 64]`` and ``eval_crops_per_volume: 5`` (seeded random crops of each volume before
  slicing); without ``eval_crop`` every slice of every volume file (e.g. the preprocessed crops) is used.
- ``patch``: each volume is cut into a grid of ``patch_size`` 3D patches (``patch_stride`` apart, default
  non-overlapping; a volume smaller than a patch is an error) and a 3D network gives 512-d features per patch
  (``metrics.med3d``: MedicalNet ResNet-10 with configured weights, or ``med3d-random``, a labelled seeded stand-in);
  FID/KID over the two patch-feature sets.

A volume set is a dataset's processed manifest (``image`` column: crop ``.npz`` relative to the results folder) or a
model's samples table (``file`` column, relative to the table's folder), restricted to one split, several joined by
"+", or ``all``. Volumes are read one at a time and features are accumulated in ``FeatureStats`` (running mean and
covariance, bounded KID reservoir): memory does not grow with the number of volumes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import MedsynthError
from .backbones import FEATURE_BACKBONES, check_backbone_allowed, metrics_settings
from .fid import InceptionEvaluator, generative_records
from .med3d import MED3D_BACKBONES, MED3D_DIMS, load_med3d, normalise_volume
from .stats import FeatureStats

VOLUME_MODES = ("slice", "patch")
SLICE_BACKBONES = tuple(b for b in FEATURE_BACKBONES if b != "classifier")  # the classifier is a radiograph model
PATCH_BACKBONES = MED3D_BACKBONES
VOLUME_DEFAULTS = {"slice_axis": 2, "slice_step": 1, "eval_crop": None, "eval_crops_per_volume": 5,
                   "patch_size": [16, 16, 16], "patch_stride": None, "volume_batch_size": 32}
VOLUME_EXTENSIONS = (".npz", ".npy")


# -- settings and rule plumbing (DAG time: no torch work) -------------------------------------------------------------
def volume_settings(config: dict) -> dict:
    """`metrics:` settings (dims, KID sizes, ...) plus the `metrics.volume:` block over its defaults."""
    vol = (config.get("metrics") or {}).get("volume") or {}
    settings = {**metrics_settings(config), **VOLUME_DEFAULTS,
                **{k: v for k, v in vol.items() if k in VOLUME_DEFAULTS}}
    if settings["patch_stride"] is None:
        settings["patch_stride"] = list(settings["patch_size"])
    return settings


def check_mode_backbone(mode: str, backbone: str, scale: str = "demo") -> None:
    if mode == "slice":
        if backbone not in SLICE_BACKBONES:
            raise MedsynthError(f"slice-wise volume metrics need a 2D backbone ({', '.join(SLICE_BACKBONES)}), "
                                f"got '{backbone}'")
        check_backbone_allowed(backbone, scale)
    elif mode == "patch":
        if backbone not in PATCH_BACKBONES:
            raise MedsynthError(f"patch-wise volume metrics need a 3D backbone ({', '.join(PATCH_BACKBONES)}), "
                                f"got '{backbone}'")
        if scale == "paper" and backbone == "med3d-random":
            raise MedsynthError("scale: paper with backbone 'med3d-random': a paper-scale run must use real "
                                "MedicalNet weights (backbone 'med3d-resnet10', config key "
                                "metrics.volume.med3d_weights); the random stand-in is for demo/ci runs only")
    else:
        raise MedsynthError(f"unknown volume metric mode '{mode}'; choose one of {', '.join(VOLUME_MODES)}")


def source_pattern(config: dict) -> str:
    """Wildcard regex of a volume set: a volume dataset's name, or <model>/<promptset> for a model's samples."""
    from ..workflow import kind

    datasets = [d for d in config.get("datasets", {}) if kind(config, d) == "volume"]
    models = list(config.get("models") or {})
    alts = [re.escape(d) for d in datasets]
    if models:
        alts.append("(?:" + "|".join(re.escape(m) for m in models) + r")/[a-z0-9_]+")
    return "|".join(alts) or "NO_VOLUME_SOURCE"


def source_table(config: dict, results: str, source: str) -> str:
    """The table a volume set is read from: <results>/data/<dataset>/manifest.parquet or
    <results>/samples/<model>/<promptset>/samples.csv."""
    if source in config.get("datasets", {}):
        return f"{results}/data/{source}/manifest.parquet"
    model, _, promptset = source.partition("/")
    if promptset and model in (config.get("models") or {}):
        return f"{results}/samples/{model}/{promptset}/samples.csv"
    raise MedsynthError(f"volume set '{source}' is neither a dataset nor <model>/<promptset> of the config")


def rule_inputs(config: dict, results: str, mode: str, backbone: str, a: str, b: str) -> dict:
    """Inputs of a volume_metrics job: both sets' tables and the backbone's weights file (so a changed file reruns
    it). Raises at DAG time for a mode/backbone mismatch, a missing weights file or a forbidden stand-in."""
    from . import backbones

    check_mode_backbone(mode, backbone, config.get("scale", "demo"))
    inputs = {"a": source_table(config, results, a), "b": source_table(config, results, b)}
    if mode == "slice":
        inputs.update(backbones.rule_inputs(config, results, backbone, ""))
    elif backbone == "med3d-resnet10":
        path = ((config.get("metrics") or {}).get("volume") or {}).get("med3d_weights")
        if not path or not Path(path).is_file():
            raise MedsynthError(f"backbone 'med3d-resnet10': config key metrics.volume.med3d_weights is "
                                f"{'unset' if not path else f'{path!r}, which does not exist'}; give MedicalNet's "
                                "resnet_10 .pth, or name backbone 'med3d-random' (labelled stand-in) instead")
        inputs["weights"] = str(path)
    return inputs


def set_info(table_path: str | os.PathLike, name: str, split: str) -> dict:
    """What a record says about one side: the set and split, and for a manifest of crops the number of distinct
    source volumes (``source_id``) the crops were cut from (n_volumes counts volume files, i.e. crops)."""
    from ..io import read_table
    from .generative import select_split

    info = {"set": f"{name}/{split}"}
    df = read_table(table_path)
    if "source_id" in df.columns:
        info["n_source_volumes"] = int(select_split(df, split, str(table_path))["source_id"].nunique())
    return info


def is_dataset_table(table_path: str | os.PathLike) -> bool:
    """A dataset's manifest (real volumes), as opposed to a model's samples table."""
    return Path(table_path).name.startswith("manifest")


def set_paths(table_path: str | os.PathLike, split: str) -> list[Path]:
    """The volume files of a set: manifest rows (``image`` relative to the results folder, two levels above the
    manifest's folder) or samples rows (``file`` relative to the table's folder), restricted to `split`."""
    from ..io import read_table
    from .generative import generated_paths, reference_paths

    table_path = Path(table_path)
    df = read_table(table_path)
    if "image" in df.columns and is_dataset_table(table_path):
        return reference_paths(df, table_path.parents[2], split)
    if "file" in df.columns:
        return generated_paths(df, table_path.parent, split)
    raise MedsynthError(f"{table_path} has neither an 'image' (manifest) nor a 'file' (samples) column")


# -- reading and cutting volumes --------------------------------------------------------------------------------------
def read_volume(path: str | os.PathLike) -> np.ndarray:
    """A volume as X x Y x Z float32 in [0, 1]: a preprocessed crop ``.npz`` (key ``image``, 1 x X x Y x Z, the HU
    window mapped to 0..1) or a ``.npy`` array of the same convention."""
    path = Path(path)
    if path.suffix not in VOLUME_EXTENSIONS:
        raise MedsynthError(f"{path.name}: volumes are read from {', '.join(VOLUME_EXTENSIONS)} (the preprocessed "
                            "crop layout); convert NIfTI with the dataset's volume preprocessing first")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "image" not in data:
                raise MedsynthError(f"{path.name}: no 'image' array (keys: {', '.join(data.files)})")
            vol = data["image"]
    else:
        vol = np.load(path, allow_pickle=False)
    vol = np.asarray(vol, dtype=np.float32)
    if vol.ndim == 4 and vol.shape[0] == 1:
        vol = vol[0]
    if vol.ndim != 3:
        raise MedsynthError(f"{path.name}: volume must be (1 x) X x Y x Z, got shape {vol.shape}")
    if not np.isfinite(vol).all() or vol.min() < 0 or vol.max() > 1:
        raise MedsynthError(f"{path.name}: intensities must be finite and in [0, 1] (the windowed HU range), got "
                            f"[{np.nanmin(vol):.3g}, {np.nanmax(vol):.3g}]")
    return vol


def volume_slices(vol: np.ndarray, axis: int = 2, step: int = 1) -> np.ndarray:
    """S x H x W: every `step`-th slice along `axis`, each one single-channel image."""
    if step < 1:
        raise MedsynthError(f"slice step must be >= 1, got {step}")
    if not -3 <= axis <= 2:
        raise MedsynthError(f"slice axis must be 0, 1 or 2, got {axis}")
    return np.ascontiguousarray(np.moveaxis(vol, axis, 0)[::step])


def patch_origins(shape: Sequence[int], size: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int, int]]:
    """Origins of a regular grid of `size` patches, `stride` apart, that fit inside `shape`."""
    if any(s < 1 for s in list(size) + list(stride)):
        raise MedsynthError(f"patch size {list(size)} and stride {list(stride)} must be positive")
    if any(p > s for p, s in zip(size, shape)):
        raise MedsynthError(f"patch {list(size)} is larger than the volume {list(shape)}: set "
                            "metrics.volume.patch_size to at most the crop size")
    axes = [range(0, s - p + 1, st) for s, p, st in zip(shape, size, stride)]
    return [(x, y, z) for x in axes[0] for y in axes[1] for z in axes[2]]


def volume_patches(vol: np.ndarray, size: Sequence[int], stride: Sequence[int]) -> np.ndarray:
    """P x 1 x X x Y x Z patches on the grid of `patch_origins`."""
    px, py, pz = size
    return np.stack([vol[x:x + px, y:y + py, z:z + pz] for x, y, z in patch_origins(vol.shape, size, stride)])[:, None]


@dataclass
class SetCounter:
    volumes: int = 0
    items: int = 0


def _rebatch(arrays: Iterator[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
    """Per-volume item stacks -> batches of exactly `batch_size` items (the last one smaller), each yielded as soon as
    it is full; items of another shape (a volume of another size) start a new batch."""
    pending: list[np.ndarray] = []
    count = 0
    for arr in arrays:
        if pending and arr.shape[1:] != pending[0].shape[1:]:
            yield torch.from_numpy(np.concatenate(pending))
            pending, count = [], 0
        start = 0
        while start < len(arr):
            take = min(batch_size - count, len(arr) - start)
            pending.append(arr[start:start + take])
            count, start = count + take, start + take
            if count == batch_size:
                yield torch.from_numpy(np.concatenate(pending))
                pending, count = [], 0
    if pending:
        yield torch.from_numpy(np.concatenate(pending))


def random_crops(vol: np.ndarray, crop: Sequence[int], n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`n` seeded random `crop`-sized sub-volumes (xing2024's evaluation: 5 random 256x256x64 crops per volume)."""
    if any(c > s for c, s in zip(crop, vol.shape)):
        raise MedsynthError(f"evaluation crop {list(crop)} larger than the volume {list(vol.shape)}")
    for _ in range(n):
        x, y, z = (int(rng.integers(0, s - c + 1)) for s, c in zip(vol.shape, crop))
        yield vol[x:x + crop[0], y:y + crop[1], z:z + crop[2]]


def slice_batches(paths: Sequence[Path], axis: int, step: int, batch_size: int,
                  counter: SetCounter | None = None, crop: Sequence[int] | None = None, n_crops: int = 1,
                  seed: int = 0) -> Iterator[torch.Tensor]:
    """N x 1 x H x W batches of single-channel slices, streamed volume by volume; with `crop`, the slices of
    `n_crops` seeded random crops of each volume (one generator over the set, so the same files give the same crops)."""
    counter = counter if counter is not None else SetCounter()
    rng = np.random.default_rng(seed)

    def per_volume():
        for path in paths:
            vol = read_volume(path)
            parts = random_crops(vol, crop, n_crops, rng) if crop else [vol]
            for part in parts:
                slices = volume_slices(part, axis, step)[:, None]
                counter.items += len(slices)
                yield slices
            counter.volumes += 1

    return _rebatch(per_volume(), batch_size)


def patch_batches(paths: Sequence[Path], size: Sequence[int], stride: Sequence[int], batch_size: int,
                  backbone: str, counter: SetCounter | None = None) -> Iterator[torch.Tensor]:
    """N x 1 x D x H x W batches of 3D patches, each volume normalised as the backbone expects before cutting."""
    counter = counter if counter is not None else SetCounter()

    def per_volume():
        for path in paths:
            patches = volume_patches(normalise_volume(read_volume(path), backbone), size, stride)
            counter.volumes += 1
            counter.items += len(patches)
            yield np.ascontiguousarray(patches, dtype=np.float32)

    return _rebatch(per_volume(), batch_size)


# -- evaluators --------------------------------------------------------------------------------------------------------
@dataclass
class PatchEvaluator(InceptionEvaluator):
    """InceptionEvaluator's statistics, distances and provenance for a 3D backbone (batches are N x 1 x D x H x W)."""

    def stats(self, batches) -> FeatureStats:
        stats = FeatureStats(self.dims, self.reservoir_size, self.is_splits, self.seed)
        for batch in batches:
            feats, _ = self.model(batch.to(self.device))
            stats.update(feats.double().cpu().numpy())
        if stats.n == 0:
            raise MedsynthError("no patches to compute statistics from")
        return stats


def volume_evaluator(mode: str, backbone: str, settings: dict, seed: int = 0, cache_dir=None, weights=None,
                     device: str = "cpu") -> InceptionEvaluator:
    check_mode_backbone(mode, backbone)
    common = dict(reservoir_size=settings["reservoir_size"], is_splits=settings["is_splits"], seed=seed)
    if mode == "slice":
        return InceptionEvaluator.create(backbone=backbone, weights=weights, dims=settings["dims"],
                                         cache_dir=cache_dir, device=device, **common)
    model, info = load_med3d(backbone, weights, seed=seed, cache_dir=cache_dir, device=device)
    return PatchEvaluator(model=model, info=info, dims=MED3D_DIMS, device=device, **common)


def channel_note(mode: str, backbone: str) -> str:
    if mode == "patch":
        return "1-channel 3D patch"
    if backbone.startswith("inception"):
        return "1-channel slice replicated to 3 identical channels (the Inception backbone takes RGB)"
    return "1-channel slice (the backbone reads one channel)"


def sampling_note(mode: str, settings: dict) -> dict:
    """How the slices or patches were taken, as each record states it."""
    if mode == "patch":
        return {"patch_size": list(settings["patch_size"]), "patch_stride": list(settings["patch_stride"])}
    note = {"slice_axis": int(settings["slice_axis"]), "slice_step": int(settings["slice_step"])}
    if settings.get("eval_crop"):
        note.update(eval_crop=list(settings["eval_crop"]), eval_crops_per_volume=int(settings["eval_crops_per_volume"]))
    return note


def _stats_cache_file(ev: InceptionEvaluator, mode: str, paths: Sequence[Path], settings: dict,
                      cache_dir: Path) -> Path:
    """Where a set's statistics are kept: keyed by backbone weights, seed, how slices/patches are cut and each
    file's name, size and mtime (a rewritten file is a new key; nothing stale is ever read)."""
    import hashlib
    import json

    files = [(str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths]
    key = json.dumps({"mode": mode, "backbone": ev.info.backbone, "weights": ev.info.weights_sha256, "dims": ev.dims,
                      "seed": ev.seed, "reservoir": ev.reservoir_size, "sampling": sampling_note(mode, settings),
                      "files": files}, sort_keys=True)
    return Path(cache_dir) / "volume_sets" / f"{mode}__{ev.info.backbone}__{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def set_stats(ev: InceptionEvaluator, mode: str, paths: Sequence[Path], settings: dict,
              cache_dir: str | os.PathLike | None = None) -> tuple[FeatureStats, SetCounter]:
    """A set's feature statistics. With cache_dir (the real side, which every model of a table is compared with)
    they are computed once and read back by the next job (mean, covariance, KID reservoir; no IS logits, which only
    the generated side needs)."""
    if cache_dir is not None:
        from .stats import CachedStats
        path = _stats_cache_file(ev, mode, paths, settings, Path(cache_dir))
        if path.is_file():
            cached = CachedStats(path)
            return cached, SetCounter(volumes=int(cached.meta["volumes"]), items=int(cached.meta["items"]))
        stats, counter = set_stats(ev, mode, paths, settings)
        stats.save_npz(path, meta={"volumes": counter.volumes, "items": counter.items, "n": stats.n})
        return stats, counter
    counter = SetCounter()
    bs = int(settings["volume_batch_size"])
    if mode == "slice":
        batches = slice_batches(paths, int(settings["slice_axis"]), int(settings["slice_step"]), bs, counter,
                                crop=settings["eval_crop"], n_crops=int(settings["eval_crops_per_volume"]),
                                seed=ev.seed)
    else:
        batches = patch_batches(paths, settings["patch_size"], settings["patch_stride"], bs, ev.info.backbone,
                                counter)
    return ev.stats(batches), counter


def volume_records(ev: InceptionEvaluator, mode: str, a_paths: Sequence[Path], b_paths: Sequence[Path],
                   settings: dict, a_info: dict | None = None, b_info: dict | None = None,
                   extra: dict | None = None, a_cache: str | os.PathLike | None = None) -> dict:
    """{metric: record dict}: FID and KID (and IS of set b, Inception slice features only) between two volume sets,
    each record carrying backbone, weights hash, seed, how slices/patches were made and the counts per set."""
    if not a_paths or not b_paths:
        raise MedsynthError(f"volume metrics need volumes on both sides, got {len(a_paths)} and {len(b_paths)}")
    stats_a, count_a = set_stats(ev, mode, a_paths, settings, cache_dir=a_cache)
    stats_b, count_b = set_stats(ev, mode, b_paths, settings)
    item = "slices" if mode == "slice" else "patches"
    info = {"mode": mode, "channels": channel_note(mode, ev.info.backbone), **sampling_note(mode, settings),
            "a": {**(a_info or {"set": "a"}), "n_volumes": count_a.volumes, f"n_{item}": count_a.items},
            "b": {**(b_info or {"set": "b"}), "n_volumes": count_b.volumes, f"n_{item}": count_b.items},
            **(extra or {})}
    with_is = mode == "slice" and stats_b.is_psum is not None and stats_b.n >= stats_b.is_splits
    if mode == "slice" and stats_b.is_psum is not None and not with_is:
        info["inception_score"] = f"not computed: {stats_b.n} slices < {stats_b.is_splits} splits"
    records = generative_records(ev, stats_a, stats_b, kid_subsets=settings["kid_subsets"],
                                 kid_subset_size=settings["kid_subset_size"], inception_score=with_is, extra=info)
    space = f"{ev.info.backbone} features of {'each 2D slice' if mode == 'slice' else 'each 3D patch'}"
    for rec in records:
        rec.n = stats_b.n
        if rec.metric == "fid":
            rec.definition = f"{mode}-wise Frechet distance of {space} (pytorch-fid formula, eigh trace)"
        elif rec.metric == "kid":
            rec.definition = f"{mode}-wise KID of {space}: unbiased MMD^2, kernel (x.y/d + 1)^3, seeded subsets"
        elif rec.metric == "is":
            rec.definition = "Inception Score over set b's slices, exp E KL(p(y|x) || p(y)), image k in split k mod S"
    return {r.metric: r.to_dict() for r in records}


def results_root(output: str | os.PathLike, a: str, b: str) -> str:
    """The results folder, from a volume_metrics output path (<a> and <b> may hold one '/' each)."""
    return str(Path(output).parents[7 + a.count("/") + b.count("/")])
