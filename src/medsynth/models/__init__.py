"""Model components of the 2D latent-diffusion engine: text encoders (+ projections), VAE, U-Net."""
