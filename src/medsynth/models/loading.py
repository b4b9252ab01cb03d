"""Load pretrained components from a Hugging Face hub id or a local path, with one clear error when unavailable.

A model entry (from the config) is a dict: {"name": hub id | local path | "embedded:minilm", "subfolder": ...,
"revision": ..., "trust_remote_code": false, ...}. `trust_remote_code` stays off unless the entry sets it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import MedsynthError
from .hub import check_remote_code, resolve_name
from .text_encoders import ConditioningTextEncoder, ConditioningTextEncoderConfig, _is_clip, _model_from_config


def pretrained(loader: Callable[..., Any], entry: dict, what: str, **kwargs) -> Any:
    """Call `loader(name, ...)`; turn "not found / offline" failures into one MedsynthError naming the model."""
    name = resolve_name(entry["name"])
    opts = {k: entry[k] for k in ("subfolder", "revision") if entry.get(k)}
    check_remote_code(entry, what)
    try:
        return loader(name, trust_remote_code=bool(entry.get("trust_remote_code", False)), **opts, **kwargs)
    except (OSError, ValueError) as err:
        raise MedsynthError(_missing_message(entry["name"], what, err)) from err


def _missing_message(name: str, what: str, err: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    local = Path(resolve_name(name))
    if local.is_dir() and any(local.rglob("*.bin")) and not any(local.rglob("*.safetensors")):
        return (f"cannot load {what} '{name}': the folder has only pickle weights (*.bin), which medsynth never "
                f"unpickles. Convert them to safetensors on a trusted machine (e.g. load and save_pretrained with "
                f"safe_serialization=True) and point the config at the converted folder")
    return (f"cannot load {what} '{name}'{' (offline mode)' if offline else ''}: {first}. Supply it as a local "
            f"folder path in the config's model entry, or download it into the Hugging Face cache (HF_HOME) on a "
            f"machine with internet: `hf download {name}`")


def _sentence_transformers_pooling(path: str) -> tuple[str | None, bool]:
    """Read a sentence-transformers folder's pooling mode, so 'model_specific' reproduces its embedding."""
    root = Path(path)
    modules = root / "modules.json"
    if not modules.is_file():
        return None, False
    entries = json.loads(modules.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in entries)
    for m in entries:
        if m.get("type", "").endswith("Pooling"):
            cfg = json.loads((root / m["path"] / "config.json").read_text())
            for mode, key in (("cls", "pooling_mode_cls_token"), ("max", "pooling_mode_max_tokens"),
                              ("mean", "pooling_mode_mean_tokens")):
                if cfg.get(key):
                    return mode, normalize
    return None, normalize


def load_text_encoder(entry: dict) -> tuple[ConditioningTextEncoder, Any]:
    """Return (ConditioningTextEncoder, tokenizer) for a model entry.

    Extra keys: extraction ('tokens' default), projection ({"kind", "out_dim", "hidden_dim"}),
    max_length (tokenizer padding length; default 77 as in Stable Diffusion), tokenizer_subfolder,
    random_init (the model's architecture with weights drawn from seed random_init_seed, default 0: an untrained
    stand-in or control, e.g. for chambon2022's textual projection offline).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel

    entry = {"name": "embedded:minilm", **entry}
    config = pretrained(AutoConfig.from_pretrained, entry, "text encoder config")
    tok_entry = dict(entry, subfolder=entry.get("tokenizer_subfolder", entry.get("subfolder") and "tokenizer"))
    tokenizer = pretrained(AutoTokenizer.from_pretrained, tok_entry, "tokenizer")
    tokenizer.model_max_length = int(entry.get("max_length", 77))
    if config.model_type == ConditioningTextEncoderConfig.model_type:  # a text encoder medsynth trained and saved
        return pretrained(ConditioningTextEncoder.from_pretrained, entry, "text encoder", use_safetensors=True), tokenizer
    if entry.get("random_init"):
        # drawn from a fixed seed, not from wherever the global RNG stands: entries that name the same random
        # stand-in get the same encoder (chambon2022's "in-domain encoder" is one encoder in all three rows)
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(entry.get("random_init_seed", 0)))
            model = _model_from_config(config)
        return wrap_encoder(model, entry, source=resolve_name(entry["name"])), tokenizer
    model_cls = CLIPTextModel if _is_clip(config) else AutoModel
    model = pretrained(model_cls.from_pretrained, entry, "text encoder", use_safetensors=True)
    return wrap_encoder(model, entry, source=resolve_name(entry["name"])), tokenizer


def wrap_encoder(model, entry: dict, source: str | None = None) -> ConditioningTextEncoder:
    """Wrap an already-built transformers text model with an extraction method and optional projection."""
    st_pooling, st_normalize = _sentence_transformers_pooling(source) if source else (None, False)
    clip = _is_clip(model.config)
    inner = model.config.to_dict()
    cfg = ConditioningTextEncoderConfig(
        encoder=inner, extraction=entry.get("extraction", "tokens"), projection=entry.get("projection"),
        # SD-1.x never passes CLIP a mask; keep that so an SD checkpoint behaves as published.
        use_attention_mask=bool(entry.get("use_attention_mask", not clip)),
        st_pooling=st_pooling, st_normalize=st_normalize)
    return ConditioningTextEncoder(cfg, encoder=model)


# ---------------------------------------------------------------- Stable Diffusion checkpoints

def _diffusers_component(loader, entry: dict, subfolder: str, what: str, **kwargs):
    """`loader(name, subfolder=...)` for one component of a hub id or local pipeline folder, with one clear error."""
    name = resolve_name(entry["name"])
    opts = {k: entry[k] for k in ("revision", "variant") if entry.get(k)}
    try:
        return loader(name, subfolder=subfolder, **opts, **kwargs)
    except (OSError, ValueError) as err:
        raise MedsynthError(_missing_message(entry["name"], f"{what} (subfolder '{subfolder}')", err)) from err


def _scheduler_class(entry: dict):
    """The sampling scheduler class the checkpoint names (its scheduler_config.json `_class_name`) and its config."""
    import diffusers
    from diffusers import DDPMScheduler

    config = _diffusers_component(DDPMScheduler.load_config, entry, "scheduler", "scheduler config")
    cls = getattr(diffusers, config.get("_class_name") or "", None)
    return (cls if isinstance(cls, type) else DDPMScheduler), config


def load_stable_diffusion(entry: dict, text_encoder_entry: dict | None = None) -> dict:
    """Components of a Stable Diffusion checkpoint (hub id or local diffusers folder), safetensors only.

    Returns {vae, unet, text_encoder (ConditioningTextEncoder), tokenizer, noise_scheduler (DDPM on the
    checkpoint's training schedule), scheduler (the checkpoint's own sampler)}. `text_encoder_entry` replaces the
    checkpoint's text encoder (e.g. RadBERT for siddiqui2023); its output width must match the U-Net's
    cross-attention width (add a projection head otherwise). The checkpoint's tokenizer pads to the length saved
    with it (SD: 77; a pipeline medsynth trained: its text encoder's max_length) unless `max_length` is given.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    entry = dict(entry)
    vae = _diffusers_component(AutoencoderKL.from_pretrained, entry, "vae", "VAE", use_safetensors=True)
    unet = _diffusers_component(UNet2DConditionModel.from_pretrained, entry, "unet", "U-Net", use_safetensors=True)
    if text_encoder_entry:
        text_encoder, tokenizer = load_text_encoder(text_encoder_entry)
    else:
        te_entry = {k: entry[k] for k in ("name", "revision", "trust_remote_code") if k in entry}
        text_encoder, tokenizer = load_text_encoder({**te_entry, "subfolder": "text_encoder",
                                                     "tokenizer_subfolder": "tokenizer",
                                                     "max_length": entry.get("max_length", 77)})
        if not entry.get("max_length"):  # the context length the checkpoint was trained with (its tokenizer's)
            saved = tokenizer.init_kwargs.get("model_max_length")
            tokenizer.model_max_length = int(saved) if isinstance(saved, int) and 2 <= saved <= 4096 else 77
    cross = unet.config.cross_attention_dim
    if text_encoder.output_dim != cross:
        raise MedsynthError(f"text encoder '{(text_encoder_entry or entry)['name']}' gives {text_encoder.output_dim}-d "
                            f"states but the U-Net of '{entry['name']}' attends to {cross}-d ones: add a projection "
                            f"head (projection: {{kind: linear, out_dim: {cross}}}) to the text encoder entry")
    sampler_cls, sched_config = _scheduler_class(entry)
    return {"vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "noise_scheduler": DDPMScheduler.from_config(sched_config),
            "scheduler": sampler_cls.from_config(sched_config)}
