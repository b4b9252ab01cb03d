"""Family `ldm2d`: 2D latent diffusion (AutoencoderKL + text-conditioned UNet2DConditionModel), saved as a
diffusers pipeline folder. Stages: `vae` (skipped by `pretrained:` entries, whose checkpoint brings one) and
`diffusion` (the entry's `train.strategy`: scratch, full fine-tune, DreamBooth, textual inversion, joint,
projection_distill). Sampling is classifier-free-guided txt2img; editing is SDEdit / img2img."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import MedsynthError
from ..io import atomic_path
from .registry import StageJob


def train_stage(stage: str, job: StageJob) -> dict:
    from ..training.stages import train_diffusion_stage, train_vae_stage

    if stage == "vae":
        return train_vae_stage(job.manifest, job.results, job.model_cfg, job.work, job.out, job.seed)
    vae = job.inputs.get("vae")
    return train_diffusion_stage(job.manifest, job.results, job.model_cfg, vae and Path(vae), job.work, job.out,
                                 job.seed)


def load(folder: Path, device: str = "cpu"):
    from ..pipeline_io import load_pipeline

    return load_pipeline(folder, device=device)


def components(pipe, sampler: str | None = None) -> dict:
    """The pipeline's parts as txt2img/img2img take them, with the named sampler (default: the pipeline's)."""
    from ..sampling import make_scheduler

    scheduler = make_scheduler(sampler, pipe.scheduler.config) if sampler else pipe.scheduler
    return dict(vae=pipe.vae, unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                scheduler=scheduler)


def image_size(pipe) -> int:
    return pipe.unet.config.sample_size * 2 ** (len(pipe.vae.config.block_out_channels) - 1)


def sample(pipe, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
    """txt2img of every (prompt, seed) row, DDIM unless the spec names another sampler."""
    from ..sampling import generate_to_dir

    sampler = spec.get("sampler", "ddim")
    # skip_existing=False: the PNGs are not declared outputs, so files of an older model must never be kept.
    generate_to_dir(components(pipe, sampler), table["prompt"].astype(str).tolist(),
                    table["seed"].astype(int).tolist(), out_dir, batch_size=spec.get("batch_size", 8),
                    names=table["file"].tolist(), skip_existing=False, num_inference_steps=spec["steps"],
                    guidance_scale=spec["guidance_scale"], negative_prompt=spec.get("negative_prompt", ""))
    return table.assign(steps=spec["steps"], guidance_scale=spec["guidance_scale"], sampler=sampler)


def edit(pipe, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
    """SDEdit: each row's `source_image` (relative to results) noised to `strength` and denoised towards its
    `prompt` with its `seed`; an optional `edit_mask` column (a mask image, white = may change) keeps the rest."""
    from PIL import Image

    from ..sampling import img2img
    from ..sampling.txt2img import to_pil
    from ..training.data import FileImages

    sampler = spec.get("sampler", "ddim")
    parts = components(pipe, sampler)
    size = image_size(pipe)
    batch = int(spec.get("batch_size", 8))
    steps, guidance = int(spec["steps"]), float(spec["guidance_scale"])
    out_dir = Path(out_dir)
    # img2img runs one strength per call: batch within each strength
    batches = [(float(s), rows.iloc[i:i + batch]) for s, rows in table.groupby("strength", sort=False)
               for i in range(0, len(rows), batch)]
    for strength, rows in batches:
        paths = [Path(results) / p for p in rows["source_image"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise MedsynthError(f"edit: source image(s) missing: {', '.join(missing[:3])}")
        images = FileImages([str(p) for p in paths], size, pipe.vae.config.in_channels, resize=True).get(
            range(len(paths)))
        mask = None
        if "edit_mask" in rows and rows["edit_mask"].notna().all():
            mask = torch.stack([torch.from_numpy(np.asarray(
                Image.open(Path(results) / m).convert("L").resize((size, size), Image.NEAREST),
                dtype=np.float32) / 255.0)[None] for m in rows["edit_mask"]])
        result = img2img(**parts, images=images, prompts=rows["prompt"].astype(str).tolist(),
                         seeds=rows["seed"].astype(int).tolist(), strength=strength,
                         num_inference_steps=steps, guidance_scale=guidance,
                         negative_prompt=spec.get("negative_prompt", ""), mask=mask)
        for img, name in zip(result.images, rows["file"]):
            with atomic_path(out_dir / name) as tmp:
                to_pil(img).save(tmp, format="PNG")
    return table.assign(steps=steps, guidance_scale=guidance, sampler=sampler)
