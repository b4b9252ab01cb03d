"""Trained models in a results folder, as the app sees them: which family, whether it can sample, and loading.

`load_model` goes through the model-family registry (medsynth.families): an ldm2d model is a diffusers pipeline
folder (rules train_vae/train_diffusion); a model of any other family is recognised from the `family.json` marker
that rule train_model_stage writes in each stage folder (its `kind`), and is finished when its last stage's marker
is there. Generating and editing call the family's own `sample`/`edit` (the workflow's samplers): the app never
carries a sampler of its own.
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
    return _describe_family(model_dir) or ModelInfo(
        model_dir.name, model_dir, None, None,
        "no model the app can load yet (no diffusers pipeline folder and no family.json stage marker)")


def _describe_family(model_dir: Path) -> ModelInfo | None:
    """A model of a registered family from its stages' family.json markers (kind in the JSON), or None."""
    from .. import families

    kinds = set()
    for marker in sorted(model_dir.glob("*/family.json")):
        try:
            kinds.add(str(json.loads(marker.read_text())["kind"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written or foreign marker: says nothing about the family
    if not kinds:
        return None
    if len(kinds) > 1:
        return ModelInfo(model_dir.name, model_dir, None, None, f"stage markers of several kinds: {sorted(kinds)}")
    kind = kinds.pop()
    if kind not in families.FAMILIES:
        return ModelInfo(model_dir.name, model_dir, None, None,
                         f"model kind '{kind}' is not a registered family ({', '.join(sorted(families.FAMILIES))})")
    fam = families.family(kind)
    if (model_dir / fam.marker(fam.stages[-1])).is_file():
        return ModelInfo(model_dir.name, model_dir, kind, model_dir / fam.sample_dir)
    done = [s for s in fam.stages if (model_dir / fam.marker(s)).is_file()]
    return ModelInfo(model_dir.name, model_dir, kind, None,
                     f"training not finished: {kind} stages done {done or 'none'}, last stage "
                     f"'{fam.stages[-1]}' is not")


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


class FamilyModel:
    """A trained model of any registered family: one sample through the family's own `sample` (one table row,
    written to a temporary folder and read back; a 3D volume is shown as its middle axial slice)."""

    def __init__(self, name: str, family, model, results: Path, device: str = "cpu"):
        self.name, self.fam, self.model, self.results, self.device = name, family, model, Path(results), device
        self.family = family.kind

    def generate(self, prompt: str, seed: int = 0, steps: int = 50, guidance: float = 7.5, sampler: str | None = None,
                 negative_prompt: str = "", on_step: Callable[[int, int], None] | None = None) -> Generated:
        import tempfile

        import pandas as pd

        from .. import __version__

        _check_settings(prompt, steps, guidance)
        table = pd.DataFrame({"prompt": [prompt], "seed": [int(seed)], "file": [f"00000.{self.fam.outputs}"]})
        spec = {"steps": int(steps), "guidance_scale": float(guidance), "negative_prompt": negative_prompt,
                "batch_size": 1, **({"sampler": sampler} if sampler else {})}
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="medsynth-app-") as tmp:
            self.fam.sample(self.model, table, Path(tmp), spec, self.results, self.device)
            image = _read_output(Path(tmp) / table["file"][0])
        seconds = time.perf_counter() - start
        if on_step is not None:
            on_step(int(steps), int(steps))
        settings = {"model": self.name, "family": self.family, "prompt": prompt, "negative_prompt": negative_prompt,
                    "seed": int(seed), "steps": int(steps), "guidance_scale": float(guidance), "sampler": sampler,
                    "size": list(image.shape[:2]), "medsynth": __version__, "seconds": round(seconds, 3)}
        return Generated(image, seconds, settings)


def _read_output(path: Path) -> np.ndarray:
    """A family's output file as a uint8 image: a PNG as it is, a NIfTI volume's middle axial slice (min-max)."""
    if not path.is_file():
        raise MedsynthError(f"the model wrote no {path.name}")
    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        vol = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float64)
        sl = vol[..., vol.shape[-1] // 2] if vol.ndim == 3 else vol
        lo, hi = float(sl.min()), float(sl.max())
        return np.round((sl - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L") if im.mode not in ("L", "RGB") else im)


def load_model(info: ModelInfo, device: str = "cpu"):
    """Load a model for sampling through its family in the registry (medsynth.families)."""
    from .. import families

    if not info.can_sample:
        raise MedsynthError(f"model {info.name} cannot be sampled: {info.reason}")
    fam = families.family(info.family)
    model = fam.load(info.weights, device)
    if info.family == LDM2D:
        return Ldm2dModel(info.name, model)
    return FamilyModel(info.name, fam, model, info.path.parent.parent, device)


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
