"""Model families (see `registry`): each `kind:` a `models:` entry may name, registered once here."""
from .registry import DEFAULT_KIND, FAMILIES, Family, StageJob, family, family_of, kind_of, register

register(Family(
    kind="ldm2d", module="medsynth.families.ldm2d", stages=("vae", "diffusion"),
    description="2D latent diffusion: VAE + text-conditioned U-Net (diffusers pipeline folder)",
    stage_dirs={"diffusion": "pipeline"}, markers={"vae": "config.json", "diffusion": "unet/config.json"},
    can_edit=True))
register(Family(
    kind="vq_ar", module="medsynth.families.vq_ar", stages=("vq", "lm"),
    description="VQ image tokenizer + causal LLM with image tokens in its vocabulary (LLM-CXR / chen2024)"))
register(Family(kind="ddpm3d", module="medsynth.families.ddpm3d", stages=("ddpm",), outputs="npz",
                description="3D conditional DDPM (MONAI U-Net, mask concatenated, DFBlock affine text fusion)"))
register(Family(kind="pix2pix3d", module="medsynth.families.pix2pix3d", stages=("pix2pix",), outputs="npz",
                description="3D pix2pix: mask -> CT U-Net generator (cross-attention text), PatchGAN, L1 + adversarial"))

__all__ = ["DEFAULT_KIND", "FAMILIES", "Family", "StageJob", "family", "family_of", "kind_of", "register"]
