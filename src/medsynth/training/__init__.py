"""Training of the 2D latent-diffusion engine: VAE stage, diffusion stage, strategies, caches, checkpoints."""
from pathlib import Path


def training_cache_dir(results) -> Path:
    """Training's content-keyed caches (VAE latents, text states, distillation targets), shared by all entries."""
    return Path(results) / "cache" / "diffusion"
