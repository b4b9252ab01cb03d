"""Training stages over one config model entry (`models: <name>:`), shared by every paper pipeline.

A model entry is either trained from scratch (keys `vae`, `unet`, `text_encoder`: the VAE stage runs first, then
the diffusion stage on the frozen trained VAE with its measured latent scale), or starts from a Stable Diffusion
checkpoint (key `pretrained: {name: hub id | local diffusers folder, revision}`, or `pretrained: {model: <entry>}`:
the pipeline another model entry of this workflow trained, <results>/models/<entry>/pipeline; an optional
`text_encoder` entry replaces the checkpoint's). The diffusion stage's `train.strategy` says what is trained (see `strategies`), and
the result is saved as a diffusers pipeline folder: `DiffusionPipeline.from_pretrained(out_dir)` loads it.

Under `accelerate launch` every process runs the stage; only the main process writes the model and summary.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MedsynthError
from . import training_cache_dir
from .loop import DiffusionData, train_diffusion, train_vae
from .stage_setup import (base_model, count_parameters, is_main, is_pretrained, pipeline_dir,  # noqa: F401 (API)
                          prepare_work_dir, resolve_pretrained, restore_best, split_rows, train_config)


def _latent_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def build_vae(model_cfg: dict):
    from ..models.autoencoder import build_autoencoder

    v = model_cfg["vae"]
    return build_autoencoder(in_channels=int(v.get("in_channels", 1)), latent_channels=v["latent_channels"],
                             block_out_channels=v["block_out_channels"], layers_per_block=v.get("layers_per_block", 1),
                             norm_num_groups=v.get("norm_num_groups", 32), sample_size=model_cfg["image_size"])


def build_unet(model_cfg: dict, vae, cross_attention_dim: int):
    from ..models.unet import build_unet as _build

    u = model_cfg["unet"]
    latent = model_cfg["image_size"] // _latent_factor(vae)
    return _build(sample_size=latent, in_channels=vae.config.latent_channels, cross_attention_dim=cross_attention_dim,
                  block_out_channels=u["block_out_channels"],
                  attention_resolutions=u.get("attention_resolutions", (latent // 2, latent // 4)),
                  layers_per_block=u.get("layers_per_block", 2), attention_head_dim=u.get("attention_head_dim", 8),
                  norm_num_groups=u.get("norm_num_groups", 16))


def noise_scheduler(model_cfg: dict):
    from diffusers import DDPMScheduler

    d = model_cfg.get("diffusion", {})
    return DDPMScheduler(num_train_timesteps=d.get("num_train_timesteps", 1000),
                         beta_schedule=d.get("beta_schedule", "linear"),
                         prediction_type=d.get("prediction_type", "epsilon"), clip_sample=False)


def diffusion_components(model_cfg: dict, vae_dir: str | Path | None = None) -> dict:
    """{vae, unet, text_encoder, tokenizer, noise_scheduler, scheduler} of a model entry before its diffusion stage."""
    from diffusers import AutoencoderKL

    from ..models.loading import load_stable_diffusion, load_text_encoder
    from ..sampling import make_scheduler

    if is_pretrained(model_cfg):
        clash = [k for k in ("vae", "unet") if k in model_cfg]
        if clash:
            raise MedsynthError(f"model entry has both `pretrained` and {clash}: a pretrained checkpoint brings its "
                                "own VAE and U-Net; remove one of them")
        return load_stable_diffusion(model_cfg["pretrained"], model_cfg.get("text_encoder"))
    if vae_dir is None:
        raise MedsynthError("a from-scratch model needs its trained VAE (run the VAE stage first)")
    vae = AutoencoderKL.from_pretrained(vae_dir, use_safetensors=True)
    text_encoder, tokenizer = load_text_encoder(dict(model_cfg["text_encoder"]))
    unet = build_unet(model_cfg, vae, text_encoder.output_dim)
    sched = noise_scheduler(model_cfg)
    return {"vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "noise_scheduler": sched,
            "scheduler": make_scheduler("ddim", sched.config)}


def _images(rows, results: Path, size: int, channels: int):
    from .data import FileImages
    return FileImages([Path(results) / p for p in rows["image"]], size, channels, resize=True)


def _batches(images, size: int = 16):
    return (images.get(range(i, min(i + size, len(images)))) for i in range(0, len(images), size))


def train_vae_stage(df, results: Path, model_cfg: dict, work_dir: Path, out_dir: Path, seed: int) -> dict:
    """Train the entry's VAE on the manifest's train split (validation on val), restore the best weights, measure
    its latent scale factor (1/std of latents) and save it as a diffusers AutoencoderKL folder in out_dir."""
    from ..models.autoencoder import measure_scaling_factor, set_scaling_factor

    if is_pretrained(model_cfg):
        raise MedsynthError("a pretrained model entry has no VAE stage (its checkpoint brings the VAE)")
    size = model_cfg["image_size"]
    torch.manual_seed(seed)
    vae = build_vae(model_cfg)
    channels = vae.config.in_channels
    train = _images(split_rows(df, ["train"]), results, size, channels)
    val = _images(split_rows(df, ["val"]), results, size, channels)
    cfg = train_config(model_cfg["vae"]["train"], seed)
    prepare_work_dir(work_dir, {"stage": "vae", "model": model_cfg, "seed": seed})
    result = train_vae(vae, train, cfg, work_dir, val_images=val)
    restored = restore_best(Path(work_dir), {"vae": vae})
    vae.eval().to("cpu")
    factor = measure_scaling_factor(vae, _batches(train), seed=seed)
    set_scaling_factor(vae, factor)
    if is_main():
        vae.save_pretrained(out_dir, safe_serialization=True)
    sq_err, count = 0.0, 0
    with torch.no_grad():
        for batch in _batches(val):
            recon = vae.decode(vae.encode(batch).latent_dist.mean).sample.clamp(-1, 1)
            sq_err += float(((recon - batch) ** 2).sum()); count += batch.numel()
    return {"stage": "vae", "steps": result.step, "resumed_from": result.resumed_from,
            "train_loss": result.losses, "val_loss": result.val_losses,
            "best_val": result.best_val, "stopped_early": result.stopped_early, "restored_best": restored,
            "scaling_factor": factor, "val_recon_mse": sq_err / count,
            "n_train": len(train), "n_val": len(val), "parameters": count_parameters(vae), "image_size": size}


def train_diffusion_stage(df, results: Path, model_cfg: dict, vae_dir: Path | None, work_dir: Path, out_dir: Path,
                          seed: int) -> dict:
    """Train the entry's diffusion stage (strategy from `diffusion.train.strategy`) on the train split with
    validation on val, restore the best weights and save a diffusers pipeline folder in out_dir."""
    from ..pipeline_io import save_pipeline, weight_store

    torch.manual_seed(seed)
    model_cfg = resolve_pretrained(model_cfg, results)
    if model_cfg["diffusion"]["train"].get("strategy") == "projection_distill":  # text only: no images, no U-Net loss
        from .distill import train_projection_distill_stage
        return train_projection_distill_stage(df, results, model_cfg, work_dir, out_dir, seed)
    comp = diffusion_components(model_cfg, vae_dir)
    vae, unet, text_encoder, tokenizer = comp["vae"], comp["unet"], comp["text_encoder"], comp["tokenizer"]
    size = int(model_cfg.get("image_size") or unet.config.sample_size * _latent_factor(vae))
    channels = vae.config.in_channels
    tr, va = split_rows(df, ["train"]), split_rows(df, ["val"])
    data = DiffusionData(images=_images(tr, results, size, channels), prompts=tr["prompt"].astype(str).tolist(),
                         val_images=_images(va, results, size, channels),
                         val_prompts=va["prompt"].astype(str).tolist())
    cfg = train_config(model_cfg["diffusion"]["train"], seed)
    vae_id = None
    if vae_dir is not None and (Path(vae_dir) / "config.json").is_file():
        vae_id = (Path(vae_dir) / "config.json").read_text()  # holds the measured scale: changes with a new VAE
    prepare_work_dir(work_dir, {"stage": "diffusion", "model": model_cfg, "seed": seed, "vae": vae_id})
    # Caches are keyed by content (frozen component + data), so all model entries and runs share one folder.
    result, strategy = train_diffusion(vae, unet, text_encoder, tokenizer, comp["noise_scheduler"], data, cfg,
                                       work_dir, cache_dir=training_cache_dir(results))
    trained = {}
    if strategy.train_unet:
        trained["unet"] = unet
    if strategy.train_text_encoder or strategy.token_ids or strategy.train_projection:
        trained["text_encoder"] = text_encoder
    restored = restore_best(Path(work_dir), trained)
    for module in (vae, unet, text_encoder):
        module.to("cpu", torch.float32).eval()
    origin = (f"fine-tuned from {base_model(model_cfg) or model_cfg['pretrained']['name']}" if is_pretrained(model_cfg)
              else "trained from scratch")
    card = {"title": f"medsynth latent diffusion model ({origin})",
            "training": {"strategy": strategy.name, "steps": result.step, "best_val": result.best_val,
                         "n_train": len(tr), "n_val": len(va), "seed": seed, "image_size": size}}
    if is_main():
        save_pipeline(out_dir, vae, unet, text_encoder, tokenizer, comp["scheduler"], card=card,
                      store=weight_store(results))
    trainable = (count_parameters(unet) * strategy.train_unet
                 + count_parameters(text_encoder.encoder) * strategy.train_text_encoder
                 + count_parameters(text_encoder.projection) * strategy.train_projection
                 + len(strategy.token_ids) * text_encoder.get_input_embeddings().weight.shape[1])
    return {"stage": "diffusion", "steps": result.step, "resumed_from": result.resumed_from,
            "train_loss": result.losses, "val_loss": result.val_losses,
            "best_val": result.best_val, "stopped_early": result.stopped_early, "restored_best": restored,
            "null_prompt_fraction": result.null_conditions / max(result.conditions, 1),
            "strategy": strategy.name, "n_train": len(tr), "n_val": len(va), "image_size": size,
            "pretrained": model_cfg["pretrained"]["name"] if is_pretrained(model_cfg) else None,
            "base_model": base_model(model_cfg),
            "parameters": {"vae": count_parameters(vae), "unet": count_parameters(unet),
                           "text_encoder": count_parameters(text_encoder),
                           "text_projection": count_parameters(text_encoder.projection),
                           "trainable_diffusion_stage": trainable}}
