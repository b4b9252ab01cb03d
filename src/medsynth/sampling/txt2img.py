"""Text-to-image sampling and batched generation of many images to disk."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import MedsynthError
from ..io import atomic_path
from .common import conditioning, decode, denoise, generators, initial_noise, step_kwargs


@torch.no_grad()
def txt2img(vae, unet, text_encoder, tokenizer, scheduler, prompts: Sequence[str], seeds: Sequence[int],
            num_inference_steps: int = 50, guidance_scale: float = 7.5, negative_prompt: str = "",
            height: int | None = None, width: int | None = None, eta: float = 0.0,
            callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Images (B, C, H, W) in [0, 1]; image i depends only on (prompts[i], seeds[i]) and the settings.
    `callback(step, total)` is called after each denoising step (a progress bar; it cannot change the result)."""
    prompts = list(prompts)
    if len(prompts) != len(seeds):
        raise MedsynthError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per image")
    device, dtype = unet.device, unet.dtype
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    height = height or unet.config.sample_size * factor
    width = width or unet.config.sample_size * factor
    gens = generators(seeds)
    context = conditioning(text_encoder, tokenizer, prompts, [negative_prompt] * len(prompts), guidance_scale,
                           device).to(dtype)
    scheduler.set_timesteps(num_inference_steps, device=device)
    shape = (len(prompts), unet.config.in_channels, height // factor, width // factor)
    latents = initial_noise(shape, gens, device, dtype) * scheduler.init_noise_sigma
    kwargs = step_kwargs(scheduler, gens, eta)
    for i, t in enumerate(scheduler.timesteps):
        latents = denoise(unet, scheduler, latents, t, context, guidance_scale, kwargs)
        if callback is not None:
            callback(i + 1, len(scheduler.timesteps))
    return decode(vae, latents.to(vae.dtype)).float().cpu()


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] -> 8-bit PIL image (grayscale for one channel)."""
    arr = (image.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))


def generate_to_dir(components: dict, prompts: Sequence[str], seeds: Sequence[int], out_dir: str | os.PathLike,
                    batch_size: int = 8, names: Sequence[str] | None = None, skip_existing: bool = True,
                    **sample_kwargs) -> list[Path]:
    """Generate one PNG per (prompt, seed) into out_dir, `batch_size` at a time. Files are written atomically;
    with skip_existing, finished files are kept, so a killed job resumes where it stopped."""
    out_dir = Path(out_dir)
    names = list(names) if names is not None else [f"{i:06d}_seed{s}.png" for i, s in enumerate(seeds)]
    if not (len(prompts) == len(seeds) == len(names)):
        raise MedsynthError("generate_to_dir needs as many prompts, seeds and names")
    paths = [out_dir / n for n in names]
    todo = [i for i, p in enumerate(paths) if not (skip_existing and p.is_file())]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        images = txt2img(prompts=[prompts[i] for i in chunk], seeds=[seeds[i] for i in chunk],
                         **components, **sample_kwargs)
        for i, image in zip(chunk, images):
            with atomic_path(paths[i]) as tmp:
                to_pil(image).save(tmp, format="PNG")
    return paths
