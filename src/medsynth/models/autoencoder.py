"""From-scratch AutoencoderKL (choksi2025: 8 latent channels) and its measured latent scale factor.

Stable Diffusion's 0.18215 is the scale of SD's own VAE; a new VAE gets 1/std of its latents on the training data,
measured here and stored in `vae.config.scaling_factor` so the pipeline config carries it.
"""
from __future__ import annotations

from typing import Iterable

import torch
from diffusers import AutoencoderKL

from ..errors import MedsynthError


def build_autoencoder(in_channels: int = 1, latent_channels: int = 8, block_out_channels=(32, 64, 128, 128),
                      layers_per_block: int = 1, norm_num_groups: int = 32, sample_size: int = 256) -> AutoencoderKL:
    n = len(block_out_channels)
    if any(c % norm_num_groups for c in block_out_channels):
        raise MedsynthError(f"VAE block_out_channels {list(block_out_channels)} must be multiples of "
                            f"norm_num_groups={norm_num_groups}")
    return AutoencoderKL(
        in_channels=in_channels, out_channels=in_channels, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups, sample_size=sample_size)


def vae_loss(vae: AutoencoderKL, images: torch.Tensor, kl_weight: float = 1e-4,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE reconstruction + kl_weight * KL(q(z|x) || N(0, I)) (choksi2025: weight 1e-4), mean over elements."""
    posterior = vae.encode(images).latent_dist
    recon = vae.decode(posterior.sample(generator=generator)).sample
    mse = torch.nn.functional.mse_loss(recon.float(), images.float())
    kl = posterior.kl().mean() / posterior.mean[0].numel()  # per latent element, so the weight is size-independent
    return mse + kl_weight * kl, {"mse": float(mse.detach()), "kl": float(kl.detach())}


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderKL, batches: Iterable[torch.Tensor], seed: int = 0) -> float:
    """1 / std of sampled latents over the given image batches (the LDM paper's recipe)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
        noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
        z = (dist.mean + dist.std * noise).double()
        total += float(z.sum()); total_sq += float((z * z).sum()); count += z.numel()
    if count < 2:
        raise MedsynthError("cannot measure the latent scale factor: no training images were given")
    var = total_sq / count - (total / count) ** 2
    if var <= 0:
        raise MedsynthError("cannot measure the latent scale factor: latents have zero variance")
    return float(1.0 / var ** 0.5)


def set_scaling_factor(vae: AutoencoderKL, value: float) -> None:
    vae.register_to_config(scaling_factor=float(value))
