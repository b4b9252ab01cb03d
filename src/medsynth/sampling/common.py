"""Pieces shared by txt2img and img2img; every step mirrors diffusers' StableDiffusion pipelines so that the
same components, prompts and seeds give the same images as `StableDiffusionPipeline`."""
from __future__ import annotations

import inspect
from typing import Sequence

import torch

from ..errors import MedsynthError
from ..models.text_encoders import encode

# sampler name -> diffusers scheduler class, imported when used (DPM-Solver's module pulls in scipy.stats: ~0.5 s
# of every sampling job's start-up otherwise)
SCHEDULERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "pndm": "PNDMScheduler",
              "dpmsolver++": "DPMSolverMultistepScheduler"}


def make_scheduler(name: str, config) -> object:
    """A sampler of the given family built from the training noise schedule (betas, timesteps, prediction)."""
    if name not in SCHEDULERS:
        raise MedsynthError(f"unknown sampler '{name}'; choose one of {', '.join(SCHEDULERS)}")
    import diffusers
    cls = getattr(diffusers, SCHEDULERS[name])
    accepted = set(inspect.signature(cls.__init__).parameters)
    # Latent diffusion conventions, the ones StableDiffusionPipeline imposes on any scheduler it is given:
    # no clipping of the predicted x0 to [-1, 1] (that is for pixel space) and steps_offset=1.
    extra = {k: v for k, v in {"clip_sample": False, "steps_offset": 1}.items() if k in accepted}
    if name == "ddpm":
        # "leading" spacing + offset 1 asks for timestep T (out of range) when all T steps are run; "trailing"
        # spacing ends every schedule, the full one included, at t = T-1 .. 0.
        extra.update(steps_offset=0, timestep_spacing="trailing")
    if name == "dpmsolver++":
        extra["algorithm_type"] = "dpmsolver++"
    return cls.from_config(config, **extra)


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: an image depends on its own seed only, not on the batch it is in."""
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(shape, gens: list[torch.Generator], device, dtype) -> torch.Tensor:
    # diffusers.utils.torch_utils.randn_tensor with a list of generators draws each sample this way.
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=dtype) for g in gens]).to(device)


def conditioning(text_encoder, tokenizer, prompts: list[str], negative: list[str], guidance_scale: float, device):
    """[negative; prompts] contexts for one batched CFG forward (no negative half when guidance <= 1)."""
    cond = encode(text_encoder, tokenizer, prompts, device)
    if guidance_scale <= 1.0:
        return cond
    return torch.cat([encode(text_encoder, tokenizer, negative, device), cond])


def step_kwargs(scheduler, gens, eta: float = 0.0) -> dict:
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = gens
    return kwargs


def denoise(unet, scheduler, latents, t, context, guidance_scale: float, kwargs: dict) -> torch.Tensor:
    """One sampler step with classifier-free guidance computed in a single batched U-Net forward."""
    cfg = guidance_scale > 1.0
    model_input = torch.cat([latents] * 2) if cfg else latents
    model_input = scheduler.scale_model_input(model_input, t)
    pred = unet(model_input, t, encoder_hidden_states=context, return_dict=False)[0]
    if cfg:
        uncond, text = pred.chunk(2)
        pred = uncond + guidance_scale * (text - uncond)
    return scheduler.step(pred, t, latents, **kwargs, return_dict=False)[0]


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images in [0, 1] (same arithmetic as diffusers' VaeImageProcessor.postprocess)."""
    image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return (image / 2 + 0.5).clamp(0, 1)
