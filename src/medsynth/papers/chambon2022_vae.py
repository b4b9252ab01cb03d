"""chambon2022 Study 1: how much of a chest radiograph survives the base model's VAE?

Real frontal radiographs of each configured dataset (Table 1: MIMIC-CXR, Table 6: CheXpert in the paper) are
encoded, a latent is **sampled** from q(z|x) (seeded per image: image i of a table uses seed + i, so a result does
not depend on the batch size) and decoded. Then, on the pairs (original, reconstruction):

- RMSE (0-255), PSNR (peak 255, dB) and SSIM per image (medsynth.metrics.pairs) -> mean +- std and a distribution
  figure (the paper's histograms);
- FID between the originals and the reconstructions (medsynth.metrics.fid; the backbone is named in the config:
  ``inception-fid`` with the real weights, or the labelled offline stand-in ``inception-random``);
- a classifier (``xrv-densenet121``: torchxrayvision's DenseNet-121 from a local file, as the paper; or
  ``classifier``: the project's own classifier trained on the dataset's training split, a labelled stand-in) scores
  originals and reconstructions for the CheXpert labels of each image's report: AUC, accuracy, F1 per label
  (medsynth.metrics.classification; uncertain = positive, missing = negative, as the paper);
- the cosine similarity of the classifier's penultimate features between each original and its reconstruction.

What an "original" is: the dataset's processed image, resized (PIL bicubic) to the side the VAE works at (the
model entry's image_size; 512 for Stable Diffusion in the paper). Every metric compares that image with its
reconstruction, both 8-bit. A grayscale image goes to a 3-channel VAE (Stable Diffusion) replicated to RGB, and the
decoded RGB comes back to grayscale as the mean of its channels.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import MedsynthError
from ..io import sha256_file, write_figure
from ..manifest import CHEXPERT_LABELS

PAPER = "chambon2022"
STUDY_KEY = "chambon2022.vae_study"
# our table id -> the paper's dataset row in the study1_vae table
PAPER_ROWS = {"table1": "MIMIC-CXR", "table6": "CheXpert"}
SCORERS = ("xrv-densenet121", "classifier")
FID_BACKBONES = ("inception-fid", "inception-random")
DEFAULTS = {"enabled": True, "splits": ["test"], "n_images": 1000, "sample_latent": True, "batch_size": 16,
            "threshold": 0.5, "n_examples": 4}
SUMMARY_COLUMNS = {"rmse": "RMSE", "psnr": "PSNR (dB)", "ssim": "SSIM", "cosine": "feature cosine similarity"}
FID_COLUMN = "FID (originals vs reconstructions)"
CLASSIFIER_COLUMNS = {(side, metric): f"{name} {side_name}"
                      for metric, name in (("auc", "AUC"), ("accuracy", "Accuracy"), ("f1", "F1"))
                      for side, side_name in (("original", "original"), ("reconstruction", "reconstruction"))}
DEFINITIONS = {
    "rmse": "RMSE on 0-255 between the 8-bit original and its 8-bit reconstruction",
    "psnr": "PSNR (peak 255, dB) between original and reconstruction",
    "ssim": "SSIM (Wang 2004, Gaussian 11x11, sigma 1.5, data range 255) between original and reconstruction",
    "cosine": "cosine similarity of the classifier's penultimate features, original vs its reconstruction",
}


# ---------------------------------------------------------------------------------------------------- settings

def settings(study: dict) -> dict:
    return {**DEFAULTS, **(study or {})}


def study_tables(study: dict, config: dict) -> dict[str, str]:
    """{table id: dataset} after checking the study block against the rest of the config (before any job runs)."""
    s = settings(study)
    models = config.get("models") or {}
    if s.get("model") not in models:
        raise MedsynthError(f"config error at '{STUDY_KEY}.model': '{s.get('model')}' is not an entry of 'models' "
                            f"(have: {', '.join(models) or 'none'})")
    tables = dict(s.get("datasets") or {})
    if not tables:
        raise MedsynthError(f"config error at '{STUDY_KEY}.datasets': name at least one of {', '.join(PAPER_ROWS)}")
    for table, dataset in tables.items():
        if table not in PAPER_ROWS:
            raise MedsynthError(f"config error at '{STUDY_KEY}.datasets.{table}': tables are {', '.join(PAPER_ROWS)}")
        if dataset not in config.get("datasets", {}):
            raise MedsynthError(f"config error at '{STUDY_KEY}.datasets.{table}': '{dataset}' is not a dataset in "
                                "'datasets' (add its config file, e.g. config/mimic_cxr.yaml / config/chexpert.yaml)")
    image_size(s, models)
    fid = s.get("fid") or {}
    if fid.get("backbone") not in FID_BACKBONES:
        raise MedsynthError(f"config error at '{STUDY_KEY}.fid.backbone': name one of {', '.join(FID_BACKBONES)} "
                            "explicitly (inception-random is the labelled offline stand-in)")
    from ..metrics.backbones import check_backbone_allowed

    check_backbone_allowed(fid["backbone"], config.get("scale", "demo"), f"{STUDY_KEY}.fid.backbone")
    if s.get("scorer") not in SCORERS:
        raise MedsynthError(f"config error at '{STUDY_KEY}.scorer': name one of {', '.join(SCORERS)} explicitly "
                            "('classifier' is the project's own classifier, a labelled stand-in)")
    return tables


def vae_source(models: dict, model: str) -> tuple[str, object]:
    """Where a model entry's VAE comes from: ("trained", <entry whose train_vae folder holds it>) or
    ("pretrained", <the checkpoint's pretrained: block>); `pretrained: {model: X}` entries follow X."""
    seen = []
    while True:
        if model not in models:
            raise MedsynthError(f"config error at '{STUDY_KEY}.model': '{model}' is not an entry of 'models'")
        if model in seen:
            raise MedsynthError(f"config error at 'models': pretrained entries form a cycle {seen + [model]}")
        seen.append(model)
        pre = models[model].get("pretrained") or {}
        if pre.get("name"):
            return "pretrained", dict(pre)
        if not pre.get("model"):
            return "trained", model
        model = pre["model"]


def image_size(study: dict, models: dict) -> int:
    """The side originals are resized to and reconstructed at: the study's image_size, else the model entry's (or,
    for an entry adapted from another, that entry's)."""
    kind, source = vae_source(models, study.get("model"))
    size = (study.get("image_size") or models[study["model"]].get("image_size")
            or (models[source].get("image_size") if kind == "trained" else None))
    if not size:
        raise MedsynthError(f"config error at '{STUDY_KEY}.image_size': the model entry '{study.get('model')}' "
                            "(a pretrained checkpoint) names no image_size; set it (Stable Diffusion v1.4: 512)")
    if int(size) < 16:
        raise MedsynthError(f"config error at '{STUDY_KEY}.image_size': {size} is below 16 px")
    return int(size)


# ---------------------------------------------------------------------------------------------------- the VAE

def _hub_file(name: str, filename: str, revision: str | None) -> Path | None:
    local = Path(name) / filename
    if local.is_file():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, filename, revision=revision)
    except Exception:  # not a hub id (e.g. a missing local folder): no file to hash
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def load_vae(pretrained: dict | None = None, vae_dir: str | os.PathLike | None = None, device: str = "cpu"):
    """(AutoencoderKL in eval mode, provenance {vae, vae_weights, vae_weights_sha256}): a checkpoint's `vae`
    subfolder (`pretrained`: {name: hub id or local folder}, safetensors only), or a trained VAE folder (rule
    train_vae). See vae_source."""
    from diffusers import AutoencoderKL

    pre = pretrained
    if pre:
        from ..models.loading import _diffusers_component

        vae = _diffusers_component(AutoencoderKL.from_pretrained, dict(pre), "vae", "VAE", use_safetensors=True)
        name = pre["name"]
        weights = _hub_file(name, "vae/diffusion_pytorch_model.safetensors", pre.get("revision"))
        if pre.get("variant"):
            weights = _hub_file(name, f"vae/diffusion_pytorch_model.{pre['variant']}.safetensors",
                                pre.get("revision")) or weights
        source = f"{name} (vae)"
    else:
        if vae_dir is None:
            raise MedsynthError("a from-scratch model entry needs its trained VAE folder (rule train_vae)")
        vae = AutoencoderKL.from_pretrained(vae_dir, use_safetensors=True)
        weights = Path(vae_dir) / "diffusion_pytorch_model.safetensors"
        source = f"trained VAE {Path(vae_dir).parent.name}/vae"
    info = {"vae": source, "vae_weights": weights.name if weights else "unknown (not in a local file)",
            "vae_weights_sha256": sha256_file(weights) if weights else "unknown"}
    return vae.eval().to(device), info


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, seed: int = 0, sample: bool = True, batch_size: int = 16,
                first_index: int = 0) -> torch.Tensor:
    """(N, 1, H, W) images in [0, 1] -> their VAE reconstructions, (N, 1, H, W) in [0, 1].

    encode -> z ~ q(z|x) (image i uses its own generator seeded seed + first_index + i; `sample=False` takes the
    mean) -> decode. Gray images are replicated to the VAE's input channels; its output channels are averaged."""
    from diffusers.utils.torch_utils import randn_tensor

    if images.ndim != 4 or images.shape[1] != 1:
        raise MedsynthError(f"images must be N x 1 x H x W, got {tuple(images.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise MedsynthError("images must lie in [0, 1]")
    param = next(vae.parameters())
    channels = vae.config.in_channels
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].float() * 2 - 1
        x = x.expand(-1, channels, -1, -1).to(param.device, param.dtype)
        dist = vae.encode(x).latent_dist
        if sample:
            gens = [torch.Generator().manual_seed(int(seed) + first_index + start + i) for i in range(len(x))]
            noise = randn_tensor(dist.mean.shape, generator=gens, device=dist.mean.device, dtype=dist.mean.dtype)
            z = dist.mean + dist.std * noise
        else:
            z = dist.mean
        y = vae.decode(z).sample.float().clamp(-1, 1).mean(dim=1, keepdim=True)
        out.append(((y + 1) / 2).cpu())
    if not out:
        raise MedsynthError("no images to reconstruct")
    return torch.cat(out)


def to_uint8(images01: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [0, 1] -> (N, H, W) uint8 (rounded)."""
    return (images01[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


# ---------------------------------------------------------------------------------------------------- images

def select_images(manifest: pd.DataFrame, splits: Sequence[str], n_images: int, seed: int) -> pd.DataFrame:
    """Frontal images of `splits`; a seeded draw of `n_images` when there are more (manifest order kept)."""
    from ..labels import normalize_view

    if "image" not in manifest.columns:
        raise MedsynthError("the manifest has no 'image' column: the VAE study needs a processed image dataset")
    rows = manifest[manifest["split"].isin(list(splits))] if "split" in manifest.columns else manifest
    rows = rows[rows["image"].notna() & (rows["image"].astype(str) != "")]
    if "view" in rows.columns:
        rows = rows[rows["view"].map(normalize_view) != "LATERAL"]
    if rows.empty:
        raise MedsynthError(f"no frontal images in split(s) {list(splits)} of the manifest")
    if len(rows) > n_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), n_images, replace=False))
        rows = rows.iloc[keep]
    return rows.reset_index(drop=True)


def load_originals(paths: Sequence[str | os.PathLike], size: int) -> np.ndarray:
    """(N, size, size) uint8: each processed image as pytorch-fid reads it (16-bit scaled to 8), PIL bicubic to
    size x size (medsynth.metrics.images.read_image)."""
    from ..metrics.images import read_image

    if not paths:
        raise MedsynthError("no images to load")
    return np.stack([read_image(p, f"bicubic{size}")[..., 0] for p in paths])


def reconstruct_dataset(rows: pd.DataFrame, results: str | os.PathLike, vae, out_dir: str | os.PathLike,
                        size: int, seed: int, sample: bool = True, batch_size: int = 16) -> pd.DataFrame:
    """Write originals/<i>.png (resized) and reconstructions/<i>.png under `out_dir`; returns the table
    (id, split, original, reconstruction, source_image, CheXpert label columns), paths relative to `out_dir`."""
    from PIL import Image

    from ..io import atomic_path

    out_dir = Path(out_dir)
    for sub in ("originals", "reconstructions"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / sub).glob("*.png"):  # never keep images of an older run
            old.unlink()
    names = [f"{i:05d}.png" for i in range(len(rows))]
    for start in range(0, len(rows), batch_size):
        part = rows.iloc[start:start + batch_size]
        orig = load_originals([Path(results) / p for p in part["image"]], size)
        recon = to_uint8(reconstruct(vae, torch.from_numpy(orig).float()[:, None] / 255.0, seed, sample,
                                     batch_size, first_index=start))
        for name, o, r in zip(names[start:start + batch_size], orig, recon):
            for sub, arr in (("originals", o), ("reconstructions", r)):
                with atomic_path(out_dir / sub / name) as tmp:
                    Image.fromarray(arr).save(tmp, format="PNG")
    table = pd.DataFrame({"id": rows["id"].values if "id" in rows else names,
                          "split": rows["split"].values if "split" in rows else "all",
                          "original": [f"originals/{n}" for n in names],
                          "reconstruction": [f"reconstructions/{n}" for n in names],
                          "source_image": rows["image"].values})
    for lab in CHEXPERT_LABELS:
        if lab in rows.columns:
            table[lab] = rows[lab].values
    return table


def read_pairs(table: pd.DataFrame, folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions) as (N, H, W) uint8 from a reconstruction table."""
    from PIL import Image

    def gray(rel):
        with Image.open(Path(folder) / rel) as im:
            return np.asarray(im.convert("L"))

    return (np.stack([gray(p) for p in table["original"]]), np.stack([gray(p) for p in table["reconstruction"]]))


# ---------------------------------------------------------------------------------------------------- metrics

def pair_metrics(originals: np.ndarray, reconstructions: np.ndarray) -> pd.DataFrame:
    """Per image RMSE (0-255), PSNR (dB), SSIM (medsynth.metrics.pairs)."""
    from ..metrics import pairs

    if originals.shape != reconstructions.shape or originals.dtype != np.uint8 or reconstructions.dtype != np.uint8:
        raise MedsynthError(f"originals {originals.shape} {originals.dtype} and reconstructions "
                            f"{reconstructions.shape} {reconstructions.dtype} must be paired uint8 images")
    return pd.DataFrame({"rmse": [pairs.rmse(o, r) for o, r in zip(originals, reconstructions)],
                         "psnr": [pairs.psnr(o, r) for o, r in zip(originals, reconstructions)],
                         "ssim": [pairs.ssim(o, r) for o, r in zip(originals, reconstructions)]})


def summary(values) -> dict:
    """mean, population std and n of the finite values (PSNR of an exact reconstruction is inf: counted apart)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    out = {"n": int(finite.size), "mean": float(finite.mean()) if finite.size else None,
           "std": float(finite.std()) if finite.size else None}
    if finite.size < arr.size:
        out["n_infinite"] = int(arr.size - finite.size)
    return out


def fid(evaluator, originals: np.ndarray, reconstructions: np.ndarray, batch_size: int = 32) -> dict:
    """FID of reconstructions against originals with the given evaluator (medsynth.metrics.fid), in batches of 32
    as the paper; None with the reason below 2 images."""
    n = len(originals)
    out = {"n": n, "batch_size": batch_size, **evaluator.provenance}
    if n < 2:
        return {**out, "value": None, "not_computed": f"{n} image(s): a covariance needs at least 2"}
    real = evaluator.stats(originals[i:i + batch_size] for i in range(0, n, batch_size))
    rec = evaluator.stats(reconstructions[i:i + batch_size] for i in range(0, n, batch_size))
    return {**out, "value": evaluator.fid(real, rec)}


def classifier_metrics(scorer, table: pd.DataFrame, folder: str | os.PathLike, threshold: float = 0.5) -> dict:
    """The scorer on originals and on reconstructions: per-label AUC/accuracy/F1/precision/recall (+ macro) for the
    labels the table carries, and per-image cosine similarity of its features (original vs reconstruction)."""
    from ..classifier.data import image_batch, label_targets
    from ..metrics.classification import cosine_similarity
    from ..metrics.scoring import scorable_labels

    labels = scorable_labels(scorer, table)
    cols = [scorer.labels.index(lab) for lab in labels]
    y = label_targets(table, labels, scorer.uncertain)
    x_orig = image_batch([Path(folder) / p for p in table["original"]], scorer.image_size)
    x_rec = image_batch([Path(folder) / p for p in table["reconstruction"]], scorer.image_size)
    # the scorer's own thresholds where it has them (the judge's validation-chosen ones), `threshold` otherwise;
    # labels the judge refuses (held-out AUC below its floor) keep their place with the reason instead of numbers
    out = {"labels": labels, "n": len(table), "threshold": scorer.thresholds(labels, threshold),
           "uncertain": scorer.uncertain, "refused": scorer.refusals(labels),
           "original": scorer.metrics(y, scorer.predict(x_orig)[:, cols], labels, threshold),
           "reconstruction": scorer.metrics(y, scorer.predict(x_rec)[:, cols], labels, threshold),
           **scorer.provenance}
    f_orig, f_rec = scorer.features(x_orig), scorer.features(x_rec)
    ok = (np.linalg.norm(f_orig, axis=1) > 0) & (np.linalg.norm(f_rec, axis=1) > 0)  # ReLU features can be all 0
    cos = np.full(len(table), np.nan)
    if ok.any():
        cos[ok] = cosine_similarity(f_orig[ok], f_rec[ok])
    out["cosine_per_image"] = cos
    out["feature_cosine"] = {**summary(cos[ok]), "excluded_zero_feature_pairs": int((~ok).sum())}
    return out


# ---------------------------------------------------------------------------------------------------- cells

def _value(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def table_cells(metrics: dict, scale: str) -> list[dict]:
    """Cells of one dataset's metrics (rule chambon2022_vae_metrics output): its row of study1_vae (RMSE, PSNR,
    SSIM, feature cosine, FID) and its Table 1/6 (rows = findings; AUC, accuracy, F1 on originals and on
    reconstructions). At paper scale the study1_vae row reproduces the paper's dataset row."""
    from ..report.cells import make_cell

    table, dataset = metrics["table"], metrics["dataset"]
    base = {"dataset": dataset, "split": "+".join(metrics["splits"]), "scale": scale, "seed": metrics["seed"],
            "resolution": f"{metrics['image_size']}x{metrics['image_size']}", **metrics["vae"],
            "latent": "sampled from q(z|x)" if metrics["sample_latent"] else "mean of q(z|x)",
            "config": metrics["config"]}
    row = f"{dataset} (measured)"
    reproduces = PAPER_ROWS[table] if scale == "paper" else None
    cells = []
    for key in ("rmse", "psnr", "ssim"):
        s = metrics["pairs"][key]
        prov = {**base, "n": s["n"], "method": DEFINITIONS[key]}
        if s.get("n_infinite"):
            prov["n_exact_reconstructions"] = s["n_infinite"]
        cells.append(make_cell(PAPER, "study1_vae", row, SUMMARY_COLUMNS[key], s["mean"], std=s["std"],
                               provenance=prov, reproduces=reproduces))
    clf = metrics["classifier"]
    scorer_prov = {"backbone": clf["backbone"], "weights_sha256": clf["weights_sha256"],
                   "stand_in": clf["stand_in"], "input_size": clf["input_size"]}
    judge = clf.get("judge") or {}  # the judge's own held-out AUC per label, printed beside each number it scored
    cos = clf["feature_cosine"]
    cos_method = DEFINITIONS["cosine"] if cos["n"] else "not computed: every pair has an all-zero feature vector"
    cells.append(make_cell(PAPER, "study1_vae", row, SUMMARY_COLUMNS["cosine"], cos["mean"], std=cos["std"],
                           provenance={**base, **scorer_prov, "n": cos["n"], "method": cos_method,
                                       "excluded_zero_feature_pairs": cos["excluded_zero_feature_pairs"]},
                           reproduces=reproduces))
    f = metrics["fid"]
    fid_method = "Frechet distance of the backbone's features, reconstructions vs originals (pytorch-fid formula)"
    if f.get("not_computed"):
        fid_method = f"not computed: {f['not_computed']}"
    cells.append(make_cell(PAPER, "study1_vae", row, FID_COLUMN, f["value"], provenance={
        **base, "n": f["n"], "method": fid_method, "backbone": f["backbone"], "weights": f["weights"],
        "weights_sha256": f["weights_sha256"], "stand_in": f["stand_in"], "resize_mode": f["resize_mode"],
        "dims": f["dims"], "batch_size": f["batch_size"]}, reproduces=reproduces))
    for label in clf["labels"]:
        for side in ("original", "reconstruction"):
            m = clf[side][label]
            thr = clf["threshold"].get(label, 0.5) if isinstance(clf["threshold"], dict) else clf["threshold"]
            for metric in ("auc", "accuracy", "f1"):
                method = (f"{metric.upper() if metric == 'auc' else metric} of the classifier's scores on the "
                          f"{side}s (CheXpert: uncertain -> {clf['uncertain']}, missing -> negative; positive at "
                          f">= {thr:.4g})")
                if m.get("refused"):
                    method = f"not scored: {m['refused']}"
                elif metric == "auc" and m["auc"] is None:
                    method = f"AUC undefined: {m.get('auc_undefined', 'one class only')}"
                prov = {**base, **scorer_prov, "n": m["n"], "positives": m["positives"], "method": method}
                if label in judge.get("heldout_auc", {}):
                    prov["judge_heldout_auc"] = judge["heldout_auc"][label]
                cells.append(make_cell(PAPER, table, label, CLASSIFIER_COLUMNS[(side, metric)], _value(m[metric]),
                                       provenance=prov))
    return cells


# ---------------------------------------------------------------------------------------------------- figures

def plot_distributions(per_image: dict[str, pd.DataFrame], path: str | os.PathLike, title: str = "") -> None:
    """The paper's histograms: RMSE, PSNR, SSIM and feature cosine similarity per image, one colour per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("rmse", "psnr", "ssim", "cosine") if any(k in df for df in per_image.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, df in per_image.items():
            vals = df[key].to_numpy(dtype=float) if key in df else np.array([])
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ax.hist(vals, bins=min(30, max(5, vals.size // 3)), alpha=0.55,
                        label=f"{name} ({vals.mean():.3g} ± {vals.std():.2g}, n={vals.size})")
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.set_xlabel(SUMMARY_COLUMNS[key])
        ax.set_ylabel("images")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", transform=ax.transAxes)
    fig.suptitle(title or "VAE reconstruction: per-image distributions")
    fig.tight_layout()
    write_figure(fig, path)


def plot_examples(table: pd.DataFrame, folder: str | os.PathLike, path: str | os.PathLike, n: int = 4,
                  per_image: pd.DataFrame | None = None, title: str = "") -> None:
    """Rows: originals, reconstructions, |original - reconstruction| (0-255, shared colour scale); n columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    originals, recons = read_pairs(table.head(n), folder)
    k = len(originals)
    diff = np.abs(originals.astype(np.int16) - recons.astype(np.int16))
    vmax = max(1, int(diff.max()))
    fig, axes = plt.subplots(3, k, figsize=(2.4 * k + 0.8, 7.4), squeeze=False)
    for j in range(k):
        for i, (img, cmap, lim) in enumerate(((originals[j], "gray", 255), (recons[j], "gray", 255),
                                              (diff[j], "magma", vmax))):
            im = axes[i, j].imshow(img, cmap=cmap, vmin=0, vmax=lim)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        if per_image is not None:
            r = per_image.iloc[j]
            axes[2, j].set_xlabel(f"RMSE {r['rmse']:.1f}, SSIM {r['ssim']:.3f}", fontsize=8)
    for i, name in enumerate(("original", "reconstruction", "|difference|")):
        axes[i, 0].set_ylabel(name)
    fig.colorbar(im, ax=list(axes[2]), shrink=0.8, label="|difference| (0-255)")
    fig.suptitle(title or "VAE reconstruction examples")
    write_figure(fig, path)

