"""Save / load trained 2D models as diffusers pipeline folders (safetensors + model card).

The folder is a `StableDiffusionPipeline`, so `DiffusionPipeline.from_pretrained(dir)` loads it and `pipe(prompt)`
generates. A text encoder that is a plain transformers model with token-level states is saved as that model
(with `use_attention_mask` in its config when it was trained with a mask, which SD's pipeline honours); one with
a pooled extraction or a projection head is saved as `medsynth.models.text_encoders.ConditioningTextEncoder`,
which diffusers resolves from the already-imported medsynth module (`import medsynth.models.text_encoders` first;
`load_pipeline` does it).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import MedsynthError
from .io import sha256_file
from .models import text_encoders as _text_encoders  # noqa: F401  (registers the class for diffusers' loader)
from .models.text_encoders import ConditioningTextEncoder


def _savable_text_encoder(text_encoder):
    if isinstance(text_encoder, ConditioningTextEncoder) and text_encoder.config.extraction == "tokens" \
            and text_encoder.projection is None:
        inner = text_encoder.encoder
        if text_encoder.config.use_attention_mask:
            inner.config.use_attention_mask = True
        return inner
    return text_encoder


def build_pipeline(vae, unet, text_encoder, tokenizer, scheduler):
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline(vae=vae, text_encoder=_savable_text_encoder(text_encoder), tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def save_pipeline(out_dir: str | os.PathLike, vae, unet, text_encoder, tokenizer, scheduler,
                  card: dict | None = None, share_with: str | os.PathLike | None = None) -> Path:
    """Write the pipeline folder atomically (temp folder + rename) with a model card README.md.

    share_with: the pipeline folder this one was adapted from; its weight files that this save reproduces byte for
    byte (the frozen VAE, an untouched text encoder or U-Net) become hard links to them (`share_identical_files`)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        pipe = build_pipeline(vae, unet, text_encoder, tokenizer, scheduler)
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "README.md").write_text(model_card(pipe, card or {}))
        if share_with is not None and Path(share_with).is_dir():
            share_identical_files(tmp, Path(share_with))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def share_identical_files(folder: Path, base: Path) -> list[str]:
    """Replace each weight file of `folder` that is byte-identical to the same relative path in `base` by a hard
    link to it, and return the relative paths shared. An adapted model then costs only what it changed on disk
    (a U-Net fine-tune: the U-Net; textual inversion: the text encoder) and still loads as a whole pipeline folder.
    Safe because pipeline folders are only ever replaced whole (`save_pipeline`), never written in place. Where
    links are not possible (another file system), the copy stays."""
    shared = []
    for path in sorted(folder.rglob("*.safetensors")):
        rel = path.relative_to(folder)
        other = base / rel
        if (not other.is_file() or other.stat().st_size != path.stat().st_size
                or sha256_file(other) != sha256_file(path)):
            continue
        link = path.with_name(path.name + ".link")
        try:
            os.link(other, link)
        except OSError:
            continue
        os.replace(link, path)
        shared.append(str(rel))
    return shared


def load_pipeline(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    from diffusers import DiffusionPipeline
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise MedsynthError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as err:
        raise MedsynthError(f"cannot load the pipeline in {path}: {str(err).splitlines()[0][:200]}") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_card(pipe, card: dict) -> str:
    te = pipe.text_encoder
    te_desc = type(te).__name__
    if isinstance(te, ConditioningTextEncoder):
        te_desc += f" (extraction: {te.config.extraction}, projection: {json.dumps(te.config.projection)})"
    lines = [
        "---", "library_name: diffusers", "pipeline_tag: text-to-image", "tags: [medsynth, medical-imaging]", "---",
        f"# {card.get('title', 'medsynth latent diffusion model')}", "",
        card.get("description", "Trained with the medsynth workflow."), "",
        "## Components",
        f"- U-Net: {_count(pipe.unet):,} parameters, cross-attention dim {pipe.unet.config.cross_attention_dim}, "
        f"latent channels {pipe.unet.config.in_channels}",
        f"- VAE: {_count(pipe.vae):,} parameters, latent scale factor {pipe.vae.config.scaling_factor:.6g}",
        f"- Text encoder: {te_desc}, {_count(te):,} parameters",
        f"- Scheduler: {type(pipe.scheduler).__name__}", "",
        "## Loading",
        "```python",
        "import medsynth.models.text_encoders  # needed only for a ConditioningTextEncoder text encoder",
        "from diffusers import DiffusionPipeline",
        "pipe = DiffusionPipeline.from_pretrained(PATH, use_safetensors=True)",
        "```", "",
    ]
    if card.get("training"):
        lines += ["## Training", "```json", json.dumps(card["training"], indent=2, sort_keys=True, default=str),
                  "```", ""]
    lines += ["## Intended use",
              "Research on synthetic medical images only; not for diagnosis. Generated images are not patient data."]
    return "\n".join(lines) + "\n"
