"""Trained models in a results folder, as the app sees them: which family, whether it can sample, and loading.

`load_model` is the one seam where model families plug in: today the ldm2d family (a diffusers pipeline folder
written by the train_diffusion rule, loaded with medsynth.pipeline_io.load_pipeline). A model folder of another
family is listed with the reason the app cannot sample it yet. Sampling and editing call the workflow's own
samplers (medsynth.sampling): the app never carries a sampler of its own.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MedsynthError

LDM2D = "ldm2d"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    family: str | None          # None: no finished model of a known family in the folder
    weights: Path | None        # what load_model reads (the pipeline folder for ldm2d)
    reason: str = ""            # why it cannot sample, when it cannot

    @property
    def can_sample(self) -> bool:
        return self.weights is not None


def describe(model_dir: Path) -> ModelInfo:
    """What a `results/models/<name>/` folder holds."""
    model_dir = Path(model_dir)
    pipeline = model_dir / "pipeline"
    if (pipeline / "model_index.json").is_file() and (pipeline / "unet" / "config.json").is_file():
        return ModelInfo(model_dir.name, model_dir, LDM2D, pipeline)
    if (model_dir / "vae" / "config.json").is_file():
        return ModelInfo(model_dir.name, model_dir, LDM2D, None,
                         "training not finished: the VAE stage is done, the diffusion stage is not")
    return ModelInfo(model_dir.name, model_dir, None, None,
                     "no model the app can load yet (no diffusers pipeline folder; other families are not wired in)")


def list_models(results: Path) -> list[ModelInfo]:
    root = Path(results) / "models"
    if not root.is_dir():
        return []
    return [describe(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def fingerprint(info: ModelInfo) -> str:
    """Changes when the model is retrained (the cache key of a loaded model)."""
    if info.weights is None:
        return ""
    files = sorted(p for p in info.weights.rglob("*") if p.is_file())
    return ";".join(f"{p.relative_to(info.weights)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


@dataclass
class Generated:
    image: np.ndarray          # (H, W) or (H, W, 3) uint8
    seconds: float
    settings: dict = field(default_factory=dict)


@dataclass
class Edited:
    original: np.ndarray       # (H, W) float32 in [0, 1], the input at the model's resolution
    edited: np.ndarray         # same shape: the counterfactual
    seconds: float
    steps_run: int
    settings: dict = field(default_factory=dict)


class Ldm2dModel:
    """A trained ldm2d pipeline: txt2img and img2img through medsynth.sampling (the workflow's samplers)."""

    family = LDM2D

    def __init__(self, name: str, pipe):
        self.name, self.pipe = name, pipe
        vae = pipe.vae
        self.size = pipe.unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = vae.config.in_channels
        self.default_sampler = type(pipe.scheduler).__name__

    def _components(self, sampler: str | None) -> dict:
        from ..sampling import make_scheduler

        scheduler = make_scheduler(sampler, self.pipe.scheduler.config) if sampler else self.pipe.scheduler
        return dict(vae=self.pipe.vae, unet=self.pipe.unet, text_encoder=self.pipe.text_encoder,
                    tokenizer=self.pipe.tokenizer, scheduler=scheduler)

    def _settings(self, prompt, seed, steps, guidance, sampler, negative_prompt) -> dict:
        from .. import __version__

        return {"model": self.name, "family": self.family, "prompt": prompt, "negative_prompt": negative_prompt,
                "seed": int(seed), "steps": int(steps), "guidance_scale": float(guidance),
                "sampler": sampler or self.default_sampler, "size": [self.size, self.size],
                "medsynth": __version__}

    def generate(self, prompt: str, seed: int = 0, steps: int = 50, guidance: float = 7.5, sampler: str | None = None,
                 negative_prompt: str = "", on_step: Callable[[int, int], None] | None = None) -> Generated:
        from ..sampling import txt2img
        from ..sampling.txt2img import to_pil

        _check_settings(prompt, steps, guidance)
        start = time.perf_counter()
        images = txt2img(**self._components(sampler), prompts=[prompt], seeds=[int(seed)],
                         num_inference_steps=int(steps), guidance_scale=float(guidance),
                         negative_prompt=negative_prompt, callback=on_step)
        seconds = time.perf_counter() - start
        settings = self._settings(prompt, seed, steps, guidance, sampler, negative_prompt)
        settings["seconds"] = round(seconds, 3)
        return Generated(np.asarray(to_pil(images[0])), seconds, settings)

    def edit(self, image: np.ndarray, prompt: str, strength: float = 0.6, seed: int = 0, steps: int = 50,
             guidance: float = 7.5, sampler: str | None = None, negative_prompt: str = "") -> Edited:
        """SDEdit counterfactual of a greyscale image in [0, 1] (any size: padded square and resized to the model's
        resolution as the preprocessing does) towards `prompt`."""
        import torch

        from ..preprocess.images import to_square
        from ..sampling import img2img

        _check_settings(prompt, steps, guidance)
        if image.ndim != 2:
            raise MedsynthError(f"the counterfactual needs a greyscale image, got shape {image.shape}")
        original = to_square(np.asarray(image, dtype=np.float32), self.size, "pad", "bicubic")
        x = torch.from_numpy(original * 2.0 - 1.0)[None, None].expand(1, self.channels, -1, -1)
        start = time.perf_counter()
        result = img2img(**self._components(sampler), images=x.contiguous(), prompts=[prompt], seeds=[int(seed)],
                         strength=float(strength), num_inference_steps=int(steps), guidance_scale=float(guidance),
                         negative_prompt=negative_prompt)
        seconds = time.perf_counter() - start
        settings = self._settings(prompt, seed, steps, guidance, sampler, negative_prompt)
        settings.update(strength=float(strength), steps_run=result.steps_run, seconds=round(seconds, 3))
        edited = result.images[0].mean(dim=0).numpy().astype(np.float32)
        return Edited(original, edited, seconds, result.steps_run, settings)


def _check_settings(prompt: str, steps: int, guidance: float) -> None:
    if not str(prompt).strip():
        raise MedsynthError("type a report or pick an example prompt first")
    if int(steps) < 1:
        raise MedsynthError(f"steps must be at least 1, got {steps}")
    if float(guidance) < 0:
        raise MedsynthError(f"guidance must be >= 0, got {guidance}")


def load_model(info: ModelInfo, device: str = "cpu"):
    """Load a model for sampling: the single place where a model family is chosen (others plug in here)."""
    if not info.can_sample:
        raise MedsynthError(f"model {info.name} cannot be sampled: {info.reason}")
    if info.family == LDM2D:
        from ..pipeline_io import load_pipeline
        return Ldm2dModel(info.name, load_pipeline(info.weights, device=device))
    raise MedsynthError(f"model {info.name}: the app cannot sample the {info.family} family yet")


def example_prompts(info: ModelInfo, results: Path, limit: int = 20) -> list[str]:
    """Prompts the workflow sampled this model with (its prompt sets' samples.csv), first seen first."""
    import pandas as pd

    seen: dict[str, None] = {}
    for table in sorted((Path(results) / "samples" / info.name).glob("*/samples.csv")):
        try:
            prompts = pd.read_csv(table, usecols=["prompt"])["prompt"].dropna().astype(str)
        except (ValueError, OSError):
            continue  # a table without prompts (or half-written) gives no examples
        for p in prompts:
            seen.setdefault(p.strip(), None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


SETTINGS_KEY = "medsynth"


def png_with_settings(image: np.ndarray, settings: dict) -> bytes:
    """PNG bytes with the generation settings as a JSON tEXt chunk (`medsynth`): no path, host, user or time."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from .. import __version__

    info = PngInfo()
    info.add_text("Software", f"medsynth {__version__}")
    info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def png_settings(data: bytes) -> dict:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        text = img.text.get(SETTINGS_KEY) if hasattr(img, "text") else None
    if text is None:
        raise MedsynthError("the PNG carries no medsynth settings")
    return json.loads(text)
