"""Sampling from trained 2D latent-diffusion models: txt2img, img2img / SDEdit, batched generation to disk."""
from .common import SCHEDULERS, make_scheduler
from .img2img import img2img
from .txt2img import generate_to_dir, txt2img

__all__ = ["SCHEDULERS", "make_scheduler", "txt2img", "img2img", "generate_to_dir"]
