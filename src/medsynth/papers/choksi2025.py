"""choksi2025 (text -> CXR latent diffusion from scratch): model assembly from config, DDIM sampling with
classifier-free guidance that is really applied, and the measured cells of the poster's tables.

Fixes of the public code's defects (paper spec): images really are in [-1, 1]; the diffusion stage uses the trained
VAE and ITS measured latent scale (never SD's 0.18215); the guided noise estimate is the one the scheduler steps with.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from PIL import Image

from ..errors import MedsynthError
from ..models.autoencoder import build_autoencoder
from ..models.loading import load_text_encoder
from ..models.text_encoders import ConditioningTextEncoder, encode
from ..models.unet import build_unet

PAPER = "choksi2025"
ROW = "medsynth (measured)"   # our row, appended under the paper's "Published model" row
EXAMPLE_PROMPTS = [
    "Normal chest X-ray, clear lungs.",
    "Right lower lobe pneumonia with consolidation.",
    "Mild cardiomegaly with pulmonary edema.",
    "Left pleural effusion with atelectasis.",
    "Bilateral pleural effusions, greater on the right.",
    "Cardiomegaly with pulmonary vascular congestion.",
]


# ------------------------------------------------------------------ images

def load_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """8-bit grayscale PNGs -> (N, 1, size, size) in [-1, 1] (the normalisation the public code never applied)."""
    out = []
    for p in paths:
        img = Image.open(p).convert("L")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)[None])
    if not out:
        raise MedsynthError("no images to load")
    return torch.stack(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> (N, H, W) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x[:, 0].cpu().numpy()


# ------------------------------------------------------------------ components

def build_text_encoder(model_cfg: dict):
    entry = dict(model_cfg["text_encoder"])
    return load_text_encoder(entry)


def build_unet_from_config(model_cfg: dict, cross_attention_dim: int) -> UNet2DConditionModel:
    u = model_cfg["unet"]
    latent = model_cfg["image_size"] // 2 ** (len(model_cfg["vae"]["block_out_channels"]) - 1)
    return build_unet(sample_size=latent, in_channels=model_cfg["vae"]["latent_channels"],
                      cross_attention_dim=cross_attention_dim, block_out_channels=u["block_out_channels"],
                      attention_resolutions=u["attention_resolutions"], layers_per_block=u["layers_per_block"],
                      attention_head_dim=u["attention_head_dim"], norm_num_groups=u["norm_num_groups"])


def build_vae_from_config(model_cfg: dict) -> AutoencoderKL:
    v = model_cfg["vae"]
    return build_autoencoder(in_channels=1, latent_channels=v["latent_channels"],
                             block_out_channels=v["block_out_channels"], layers_per_block=v["layers_per_block"],
                             norm_num_groups=v["norm_num_groups"], sample_size=model_cfg["image_size"])


def noise_scheduler(model_cfg: dict) -> DDPMScheduler:
    d = model_cfg["diffusion"]
    return DDPMScheduler(num_train_timesteps=d["num_train_timesteps"], beta_schedule=d["beta_schedule"],
                         prediction_type=d["prediction_type"], clip_sample=False)


@dataclass
class Pipeline:
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: ConditioningTextEncoder
    tokenizer: object
    scheduler: DDIMScheduler


def save_pipeline(folder: str | Path, vae, unet, text_encoder, tokenizer, scheduler) -> None:
    """diffusers' component layout (vae/, unet/, text_encoder/, tokenizer/, scheduler/), safetensors weights."""
    folder = Path(folder)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    scheduler.save_pretrained(folder / "scheduler")


def load_pipeline(folder: str | Path) -> Pipeline:
    from transformers import AutoTokenizer

    folder = Path(folder)
    missing = [s for s in ("vae", "unet", "text_encoder", "tokenizer", "scheduler") if not (folder / s).is_dir()]
    if missing:
        raise MedsynthError(f"{folder} is not a trained pipeline: lacks {', '.join(missing)}")
    vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True).eval()
    te = ConditioningTextEncoder.from_pretrained(folder / "text_encoder", use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
    sched = DDIMScheduler.from_config(DDPMScheduler.load_config(folder / "scheduler"))
    return Pipeline(vae, unet, te, tok, sched)


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------ sampling

@torch.no_grad()
def sample(pipe: Pipeline, prompts: Sequence[str], seeds: Sequence[int], steps: int = 50, guidance_scale: float = 3.0,
           eta: float = 0.0, batch_size: int = 8) -> torch.Tensor:
    """DDIM with classifier-free guidance: eps = eps(null) + w * (eps(prompt) - eps(null)), images in [-1, 1].

    One generator per image (seeded), so an image depends on its seed and prompt only, not on batch composition."""
    if len(prompts) != len(seeds):
        raise MedsynthError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if steps < 1:
        raise MedsynthError("DDIM needs at least one step")
    unet, vae = pipe.unet, pipe.vae
    scale = vae.config.scaling_factor
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    out = []
    for start in range(0, len(prompts), batch_size):
        p = list(prompts[start:start + batch_size])
        s = list(seeds[start:start + batch_size])
        ctx = encode(pipe.text_encoder, pipe.tokenizer, p).float()
        null = encode(pipe.text_encoder, pipe.tokenizer, [""] * len(p)).float()
        latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(x))) for x in s])
        sched = DDIMScheduler.from_config(pipe.scheduler.config)
        sched.set_timesteps(steps)
        latents = latents * sched.init_noise_sigma  # the unit-variance latent space is what `scale` made
        for t in sched.timesteps:
            if guidance_scale == 1.0:
                eps = unet(latents, t, ctx).sample
            else:
                e_null, e_cond = unet(torch.cat([latents, latents]), t, torch.cat([null, ctx])).sample.chunk(2)
                eps = e_null + guidance_scale * (e_cond - e_null)
            latents = sched.step(eps, t, latents, eta=eta).prev_sample
        out.append(vae.decode(latents / scale).sample.clamp(-1, 1))
    return torch.cat(out)


# ------------------------------------------------------------------ table cells

def provenance(dataset: str, n: int, method: str, scale: str, seed: int, **extra) -> dict:
    return {"dataset": dataset, "n": int(n), "method": method, "scale": scale, "seed": seed, **extra}


def quality_values(generated: np.ndarray, real_pairs: np.ndarray) -> dict:
    """Per-image SSIM/PSNR against the real image of the same report, and no-reference statistics of the generated
    images; returns {metric: (mean, std, n)}."""
    from ..metrics.noref import contrast_ratio, entropy, sharpness
    from ..metrics.pairs import psnr, ssim

    if generated.shape != real_pairs.shape:
        raise MedsynthError(f"generated {generated.shape} and real {real_pairs.shape} images must pair up")
    vals = {"SSIM": [ssim(g, r) for g, r in zip(generated, real_pairs)],
            "PSNR (dB)": [psnr(g, r) for g, r in zip(generated, real_pairs)],
            "Contrast ratio": [contrast_ratio(g) for g in generated],
            "Sharpness": [sharpness(g) for g in generated],
            "Entropy": [entropy(g) for g in generated]}
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in vals.items()}


def write_json(obj, path: str | Path) -> None:
    from ..io import write_json as _w
    _w(obj, path)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------ training stages (generic over a model entry)

def split_rows(df, splits: Sequence[str], view: str | None = None):
    rows = df[df["split"].isin(list(splits))]
    if view is not None and "view" in rows:
        rows = rows[rows["view"] == view]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        raise MedsynthError(f"the manifest has no rows in split(s) {list(splits)}")
    return rows


def train_config(block: dict, seed: int):
    from ..training.loop import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(block) - known)
    if unknown:
        raise MedsynthError(f"unknown training option(s) {unknown}")
    return TrainConfig(**{**block, "seed": seed})


def _restore_best(out_dir: Path, modules: dict) -> bool:
    """Early stopping keeps the best-validation weights (out_dir/best); the final model is those weights."""
    from safetensors.torch import load_file

    best = out_dir / "best"
    if not all((best / f"{n}.safetensors").is_file() for n in modules):
        return False
    for name, module in modules.items():
        module.load_state_dict(load_file(str(best / f"{name}.safetensors")))
    return True


def train_vae_stage(df, results: Path, model_cfg: dict, work_dir: Path, out_dir: Path, seed: int) -> dict:
    from ..models.autoencoder import measure_scaling_factor, set_scaling_factor
    from ..training.data import TensorImages
    from ..training.loop import train_vae

    size = model_cfg["image_size"]
    train = TensorImages(load_images([results / p for p in split_rows(df, ["train"])["image"]], size))
    val = TensorImages(load_images([results / p for p in split_rows(df, ["val"])["image"]], size))
    torch.manual_seed(seed)
    vae = build_vae_from_config(model_cfg)
    cfg = train_config(model_cfg["vae"]["train"], seed)
    result = train_vae(vae, train, cfg, work_dir, val_images=val)
    restored = _restore_best(Path(work_dir), {"vae": vae})
    vae.eval()
    factor = measure_scaling_factor(vae, [train.images[i:i + 16] for i in range(0, len(train), 16)], seed=seed)
    set_scaling_factor(vae, factor)
    vae.save_pretrained(out_dir, safe_serialization=True)
    with torch.no_grad():
        recon = vae.decode(vae.encode(val.images).latent_dist.mean).sample.clamp(-1, 1)
    return {"stage": "vae", "steps": result.step, "train_loss": result.losses, "val_loss": result.val_losses,
            "best_val": result.best_val, "stopped_early": result.stopped_early, "restored_best": restored,
            "scaling_factor": factor, "val_recon_mse": float(((recon - val.images) ** 2).mean()),
            "n_train": len(train), "n_val": len(val), "parameters": count_parameters(vae), "image_size": size}


def train_diffusion_stage(df, results: Path, model_cfg: dict, vae_dir: Path, work_dir: Path, out_dir: Path,
                          seed: int) -> dict:
    from ..training.data import TensorImages
    from ..training.loop import DiffusionData, train_diffusion

    size = model_cfg["image_size"]
    tr, va = split_rows(df, ["train"]), split_rows(df, ["val"])
    vae = AutoencoderKL.from_pretrained(vae_dir, use_safetensors=True)
    torch.manual_seed(seed)
    text_encoder, tokenizer = build_text_encoder(model_cfg)
    unet = build_unet_from_config(model_cfg, text_encoder.output_dim)
    sched = noise_scheduler(model_cfg)
    data = DiffusionData(images=TensorImages(load_images([results / p for p in tr["image"]], size)),
                         prompts=tr["prompt"].astype(str).tolist(),
                         val_images=TensorImages(load_images([results / p for p in va["image"]], size)),
                         val_prompts=va["prompt"].astype(str).tolist())
    cfg = train_config(model_cfg["diffusion"]["train"], seed)
    result, strategy = train_diffusion(vae, unet, text_encoder, tokenizer, sched, data, cfg, work_dir,
                                       cache_dir=Path(work_dir) / "cache")
    restored = _restore_best(Path(work_dir), {"unet": unet, "text_encoder": text_encoder})
    save_pipeline(out_dir, vae, unet, text_encoder, tokenizer, DDIMScheduler.from_config(sched.config))
    trainable = count_parameters(unet) + count_parameters(text_encoder.projection)
    return {"stage": "diffusion", "steps": result.step, "train_loss": result.losses, "val_loss": result.val_losses,
            "best_val": result.best_val, "stopped_early": result.stopped_early, "restored_best": restored,
            "null_prompt_fraction": result.null_conditions / max(result.conditions, 1),
            "strategy": strategy.name, "n_train": len(tr), "n_val": len(va),
            "parameters": {"vae": count_parameters(vae), "unet": count_parameters(unet),
                           "text_encoder": count_parameters(text_encoder),
                           "text_projection": count_parameters(text_encoder.projection),
                           "trainable_diffusion_stage": trainable}}


# ------------------------------------------------------------------ prompt sets

def resolve_prompt_set(spec: dict, df=None):
    """A prompt set -> table of (prompt, seed[, source row]). Either `prompts: [...]` (each sampled
    `n_per_prompt` times with seeds seed, seed+1, ...) or `splits: [...]` (the reports of those manifest splits,
    each kept with its id, real image and labels, for paired and label-based evaluation)."""
    import pandas as pd

    n, seed = int(spec.get("n_per_prompt", 1)), int(spec.get("seed", 0))
    if bool(spec.get("prompts")) == bool(spec.get("splits")):
        raise MedsynthError("a prompt set gives exactly one of 'prompts' or 'splits'")
    if spec.get("prompts"):
        rows = [{"prompt": p, "seed": seed + k} for p in spec["prompts"] for k in range(n)]
        return pd.DataFrame(rows)
    if df is None:
        raise MedsynthError("a prompt set drawn from splits needs the dataset manifest")
    src = split_rows(df, spec["splits"])
    if spec.get("limit"):
        src = src.head(int(spec["limit"]))
    keep = [c for c in src.columns if c not in ("source", "mask_source")]
    reps = [src[keep].assign(seed=seed + k, source_id=src["id"], source_image=src["image"]) for k in range(n)]
    return pd.concat(reps, ignore_index=True).drop(columns=["id", "image"])


# ------------------------------------------------------------------ cells

QUALITY_COLUMNS = ["SSIM", "PSNR (dB)", "Contrast ratio", "Sharpness", "Entropy"]
QUALITY_METHODS = {
    "SSIM": "SSIM (Wang 2004, Gaussian 11x11) of each generated image vs the real image of the same report, mean",
    "PSNR (dB)": "PSNR (peak 255) of each generated image vs the real image of the same report, mean",
    "Contrast ratio": "(p99 - p1) / (p99 + p1) of 8-bit gray levels, mean over generated images",
    "Sharpness": "variance of the 4-neighbour Laplacian on 0-255, mean over generated images",
    "Entropy": "Shannon entropy (bits) of the 256-bin gray histogram, mean over generated images",
}


def quality_cells(values: dict, prov: dict) -> list[dict]:
    from ..report.cells import make_cell

    cells = []
    for col in QUALITY_COLUMNS:
        mean, std, n = values[col]
        cells.append(make_cell(PAPER, "quality", ROW, col, mean, std=std,
                               provenance={**prov, "n": n, "method": QUALITY_METHODS[col]}))
    return cells


# ------------------------------------------------------------------ text control (effusion) and classifier scores

def region_effect(normal: np.ndarray, finding: np.ndarray, region: np.ndarray) -> dict:
    """Mean |finding - normal| (8-bit levels) inside vs outside a boolean region, over paired same-seed images."""
    if region.sum() == 0 or (~region).sum() == 0:
        raise MedsynthError("the finding region is empty or covers the whole image")
    diff = np.abs(finding.astype(np.float64) - normal.astype(np.float64))
    inside, outside = float(diff[:, region].mean()), float(diff[:, ~region].mean())
    return {"mean_abs_diff_inside": inside, "mean_abs_diff_outside": outside,
            "ratio": inside / outside if outside > 0 else float("inf"), "n_pairs": int(len(diff)),
            "region_fraction": float(region.mean())}


def _region_rows(df, column: str, sides):
    return df[df[column].astype(str).isin(sides) & (df["mask"].fillna("").astype(str) != "")]


def has_region(df, column: str = "effusion_side", sides=("right", "bilateral")) -> bool:
    return not _region_rows(df, column, sides).empty


def cohort_region(df, results: Path, size: int, column: str = "effusion_side", sides=("right", "bilateral")):
    """Frequency map of the cohort's lesion masks on patients whose finding is on the given side(s): where the
    finding lives in this cohort (ground truth from the phantom)."""
    rows = _region_rows(df, column, sides)
    if rows.empty:
        raise MedsynthError(f"no patient with {column} in {list(sides)} has a lesion mask")
    masks = [np.asarray(Image.open(results / m).convert("L").resize((size, size), Image.NEAREST)) > 0
             for m in rows["mask"]]
    return np.mean(masks, axis=0), len(masks)


def classifier_auc(y_true: np.ndarray, prob: np.ndarray, labels: Sequence[str]) -> dict:
    from sklearn.metrics import roc_auc_score

    out = {}
    for i, name in enumerate(labels):
        t = y_true[:, i]
        out[name] = {"auc": float(roc_auc_score(t, prob[:, i])) if 0 < t.sum() < len(t) else None,
                     "positives": int(t.sum()), "n": int(len(t))}
    return out
