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
                  card: dict | None = None, store: str | os.PathLike | None = None) -> Path:
    """Write the pipeline folder atomically (temp folder + rename) with a model card README.md.

    The text encoder's input-embedding table is saved apart from its other weights (`split_input_embeddings`), so a
    textual inversion, which adds or changes embedding rows only, reproduces the rest byte for byte.
    store: the results' shared weight store (`weight_store`): every weight file that another saved model already
    holds (the frozen VAE and text encoder of an adapted model, an untouched U-Net, the layers under a textual
    inversion's new token, the same seeded encoder in sibling entries) becomes a hard link (`link_to_store`)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        pipe = build_pipeline(vae, unet, text_encoder, tokenizer, scheduler)
        pipe.save_pretrained(tmp, safe_serialization=True)
        split_input_embeddings(tmp / "text_encoder", _input_embedding_key(pipe.text_encoder))
        (tmp / "README.md").write_text(model_card(pipe, card or {}))
        if store is not None:
            link_to_store(tmp, Path(store))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if store is not None:
        prune_store(Path(store))  # the replaced folder's files that nothing else links
    return out_dir


def weight_store(results: str | os.PathLike) -> Path:
    """The content-addressed weight files of every model saved under `results` (hard-link targets)."""
    return Path(results) / "models" / ".weights"


def _input_embedding_key(module) -> str | None:
    inner = module.encoder if isinstance(module, ConditioningTextEncoder) else module
    try:
        weight = inner.get_input_embeddings().weight
    except (AttributeError, NotImplementedError):
        return None
    return next((k for k, v in module.state_dict(keep_vars=True).items() if v is weight), None)


def split_input_embeddings(folder: Path, key: str | None) -> bool:
    """Re-save a single-file transformers checkpoint in `folder` as two shards with the standard index (which
    `from_pretrained` loads): the input-embedding table `key` alone, then every other tensor. False (unchanged)
    when the folder is not a single-file checkpoint holding `key`."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    single = folder / "model.safetensors"
    if key is None or not single.is_file():
        return False
    with safe_open(single, framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata() or {"format": "pt"}
        if key not in keys or len(keys) < 2:
            return False
        tensors = {k: f.get_tensor(k) for k in keys}
    names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    save_file({key: tensors[key]}, folder / names[0], metadata=meta)
    save_file({k: v for k, v in tensors.items() if k != key}, folder / names[1], metadata=meta)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": {k: names[k != key] for k in sorted(keys)}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    single.unlink()
    return True


def link_to_store(folder: Path, store: Path) -> list[str]:
    """Make each weight file of `folder` a hard link into `store` (files named by their SHA-256): a file the store
    already holds is replaced by a link to it, a new one is added. Return the relative paths that were already
    there (shared with another model). Safe because model folders are only ever replaced whole (`save_pipeline`),
    never written in place. Where links are not possible (another file system), the copy stays."""
    store.mkdir(parents=True, exist_ok=True)
    shared = []
    for path in sorted(folder.rglob("*.safetensors")):
        blob = store / f"{sha256_file(path)}.safetensors"
        if blob.exists() and blob.stat().st_size != path.stat().st_size:
            continue  # a store file changed in place (never by medsynth): do not link to it
        try:
            os.link(path, blob)  # new content: the store now holds it too
            continue
        except FileExistsError:
            pass
        except OSError:
            continue
        link = path.with_name(path.name + ".link")
        try:
            os.link(blob, link)
        except OSError:  # pruned meanwhile, or no links here: keep the copy
            continue
        os.replace(link, path)
        shared.append(str(path.relative_to(folder)))
    return shared


def prune_store(store: Path) -> list[str]:
    """Remove the store's files that no model folder links any more (link count 1)."""
    gone = []
    for blob in store.glob("*.safetensors"):
        try:
            if blob.stat().st_nlink == 1:
                blob.unlink()
                gone.append(blob.name)
        except FileNotFoundError:
            pass
    return gone


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
