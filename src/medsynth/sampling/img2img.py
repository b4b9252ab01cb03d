"""Image-to-image / SDEdit (siddiqui2023 counterfactuals) with diffusers' strength semantics and an optional mask.

strength s with N inference steps: the input is noised to the (N - int(s*N))-th timestep and exactly int(s*N)
denoising steps run (times the scheduler order), as in StableDiffusionImg2ImgPipeline. With a mask (1 = may
change), the region outside the mask is reset each step to the input noised to the current level (SD's legacy
masked img2img), so edits stay inside the organ of interest; the mask is returned with the images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import MedsynthError
from .common import conditioning, decode, denoise, generators, initial_noise, step_kwargs


@dataclass
class Img2ImgResult:
    images: torch.Tensor          # (B, C, H, W) in [0, 1]
    mask: torch.Tensor | None     # (B, 1, H, W) in [0, 1], as given
    steps_run: int                # U-Net evaluations per image (denoising steps)
    start_timestep: int


@torch.no_grad()
def img2img(vae, unet, text_encoder, tokenizer, scheduler, images: torch.Tensor, prompts: Sequence[str],
            seeds: Sequence[int], strength: float = 0.8, num_inference_steps: int = 50, guidance_scale: float = 7.5,
            negative_prompt: str = "", mask: torch.Tensor | None = None, eta: float = 0.0) -> Img2ImgResult:
    """`images`: (B, C, H, W) in [-1, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise MedsynthError(f"img2img strength must be in [0, 1], got {strength}")
    prompts = list(prompts)
    if not (len(prompts) == len(seeds) == len(images)):
        raise MedsynthError("img2img needs one prompt and one seed per input image")
    device, dtype = unet.device, unet.dtype
    gens = generators(seeds)
    context = conditioning(text_encoder, tokenizer, prompts, [negative_prompt] * len(prompts), guidance_scale,
                           device).to(dtype)
    scheduler.set_timesteps(num_inference_steps, device=device)
    init = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    if len(timesteps) == 0:
        raise MedsynthError(f"strength {strength} with {num_inference_steps} steps runs no denoising step")
    # As the diffusers pipeline with a list of generators: posterior sample per image, then the noise.
    images = images.to(device, vae.dtype)
    init_latents = torch.cat([
        vae.encode(images[i:i + 1]).latent_dist.sample(generator=g) for i, g in enumerate(gens)])
    init_latents = (init_latents * vae.config.scaling_factor).to(dtype)
    noise = initial_noise(init_latents.shape, gens, device, dtype)
    latents = scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(len(prompts)))
    latent_mask = None
    if mask is not None:
        if mask.shape[0] != len(prompts) or mask.shape[-2:] != images.shape[-2:]:
            raise MedsynthError(f"mask shape {tuple(mask.shape)} does not match images {tuple(images.shape)}")
        latent_mask = F.interpolate(mask.float().to(device), size=init_latents.shape[-2:], mode="area").to(dtype)
    kwargs = step_kwargs(scheduler, gens, eta)
    for i, t in enumerate(timesteps):
        latents = denoise(unet, scheduler, latents, t, context, guidance_scale, kwargs)
        if latent_mask is not None:
            known = init_latents
            if i + 1 < len(timesteps):
                known = scheduler.add_noise(init_latents, noise, timesteps[i + 1:i + 2].repeat(len(prompts)))
            latents = latent_mask * latents + (1 - latent_mask) * known
    out = decode(vae, latents.to(vae.dtype)).float().cpu()
    return Img2ImgResult(out, None if mask is None else mask.cpu(), len(timesteps), int(timesteps[0]))
