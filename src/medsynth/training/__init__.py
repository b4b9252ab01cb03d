"""Training of the 2D latent-diffusion engine: VAE stage, diffusion stage, strategies, caches, checkpoints."""
