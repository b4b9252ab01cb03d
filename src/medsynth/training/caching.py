"""On-disk caches of what frozen components compute: VAE latent distributions and text-encoder states.

Keys are the frozen component's identity (hash of its weights and config) and the data's fingerprint, so a
cache is reused across runs and never served for a changed model or changed data. Latent caches keep the
distribution (mean, logvar), and training samples a fresh latent each step, as encoding every step would.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_path
from ..models.text_encoders import encode


def module_fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    h = hashlib.sha256(type(module).__name__.encode() + extra.encode())
    config = getattr(module, "config", None)
    if config is not None:
        as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        h.update(json.dumps(as_dict, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class LatentCache:
    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor, path: Path | None = None, reused: bool = False):
        self.mean, self.logvar, self.path, self.reused = mean, logvar, path, reused

    @classmethod
    @torch.no_grad()
    def build_or_load(cls, cache_dir: str | Path, vae, images, batch_size: int = 16) -> "LatentCache":
        key = hashlib.sha256((module_fingerprint(vae) + images.fingerprint()).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"latents-{key}.safetensors"
        if path.is_file():
            data = load_file(str(path))
            return cls(data["mean"], data["logvar"], path, reused=True)
        means, logvars = [], []
        for start in range(0, len(images), batch_size):
            batch = images.get(range(start, min(start + batch_size, len(images))))
            dist = vae.encode(batch.to(vae.device, vae.dtype)).latent_dist
            # contiguous: the VAE may return channels-last views, and memory format changes conv numerics (exact resume)
            means.append(dist.mean.float().cpu().contiguous()); logvars.append(dist.logvar.float().cpu().contiguous())
        mean, logvar = torch.cat(means), torch.cat(logvars)
        with atomic_path(path) as tmp:
            save_file({"mean": mean.contiguous(), "logvar": logvar.contiguous()}, str(tmp))
        return cls(mean, logvar, path)

    def sample(self, indices, generator: torch.Generator) -> torch.Tensor:
        mean, logvar = self.mean[list(indices)], self.logvar[list(indices)]
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        # Same clamp as diffusers' DiagonalGaussianDistribution.
        return mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise


class TextCache:
    """Pre-projection states of a frozen text encoder for each distinct prompt (plus the null prompt "")."""

    def __init__(self, texts: list[str], states: torch.Tensor, path: Path | None = None, reused: bool = False):
        self.index = {t: i for i, t in enumerate(texts)}
        self.states, self.path, self.reused = states, path, reused

    @classmethod
    @torch.no_grad()
    def build_or_load(cls, cache_dir: str | Path, text_encoder, tokenizer, texts, batch_size: int = 32) -> "TextCache":
        unique = sorted(set(texts) | {""})
        encoder_id = module_fingerprint(text_encoder.encoder, extra=json.dumps(
            [text_encoder.config.extraction, text_encoder.config.use_attention_mask, text_encoder.config.st_pooling,
             text_encoder.config.st_normalize, tokenizer.model_max_length, len(tokenizer)]))
        data_id = hashlib.sha256("\n".join(unique).encode()).hexdigest()
        key = hashlib.sha256((encoder_id + data_id).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"text-{key}.safetensors"
        if path.is_file():
            return cls(unique, load_file(str(path))["states"], path, reused=True)
        states = torch.cat([encode(text_encoder, tokenizer, unique[i:i + batch_size], project=False).float().cpu()
                            for i in range(0, len(unique), batch_size)])
        with atomic_path(path) as tmp:
            save_file({"states": states.contiguous()}, str(tmp))
        return cls(unique, states, path)

    def get(self, texts) -> torch.Tensor:
        return self.states[[self.index[t] for t in texts]]
