"""The training loop (accelerate): a generic resumable engine plus the VAE and diffusion stages.

Determinism and exact resume: all randomness of a step (latent sampling, noise, timesteps, CFG dropout, VAE
posterior samples) comes from one CPU `torch.Generator` saved in every checkpoint with the other RNG states;
batches come from a per-epoch permutation seeded by (seed, epoch), so the data position is just the micro-batch
counter. A run killed after step k and resumed from its last checkpoint reproduces the uninterrupted weights.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from ..errors import MedsynthError
from ..models.autoencoder import vae_loss
from ..models.text_encoders import encode
from .caching import LatentCache, TextCache
from .checkpoint import (latest_checkpoint, load_module_weights, load_state, rng_state, save_checkpoint,
                         set_rng_state)
from .strategies import Strategy, after_optimizer_step, make_strategy, trainable_parameters


@dataclass
class TrainConfig:
    max_steps: int = 100
    batch_size: int = 4
    learning_rate: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    lr_scheduler: str = "cosine"            # any diffusers.optimization scheduler name
    lr_warmup_steps: int = 0
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"             # no | fp16 | bf16 (accelerate)
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    checkpoint_every: int = 100
    checkpoint_limit: int | None = 3
    resume: bool = True
    validate_every: int = 0                 # 0 = no validation
    early_stopping_patience: int | None = None
    seed: int = 0
    stop_after: int | None = None           # end the run after this step, as a kill would (for resume tests)
    # diffusion stage
    strategy: str = "scratch"
    cfg_dropout: float = 0.1                # classifier-free guidance: fraction of prompts replaced by ""
    prior_loss_weight: float = 1.0
    cache_latents: bool = True
    cache_text: bool = True
    placeholder_tokens: tuple[str, ...] = ()
    initializer_token: str | None = None
    # VAE stage
    kl_weight: float = 1e-4


@dataclass
class TrainResult:
    step: int
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)  # wall time of each optimizer step (this process)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    best_val: float | None = None
    stopped_early: bool = False
    interrupted: bool = False
    resumed_from: int | None = None
    null_conditions: int = 0                # prompts replaced by the null prompt (CFG dropout), over the run
    conditions: int = 0


def batch_indices(n: int, batch_size: int, micro: int, seed: int) -> list[int]:
    """Indices of micro-batch `micro`: epoch e uses a permutation seeded by (seed, e); last batch may be short."""
    per_epoch = math.ceil(n / batch_size)
    epoch, b = divmod(micro, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return perm[b * batch_size:(b + 1) * batch_size].tolist()


def _weight_dtype(mixed_precision: str) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def run_training(out_dir: str | Path, cfg: TrainConfig, models: dict[str, torch.nn.Module],
                 save: dict[str, torch.nn.Module], params: list[torch.nn.Parameter],
                 loss_fn: Callable, val_fn: Callable | None = None, ema_module: torch.nn.Module | None = None,
                 after_step: Callable | None = None, accelerator: Accelerator | None = None) -> TrainResult:
    """Generic engine. `loss_fn(models, micro, generator) -> (loss, stats)`; `val_fn(models) -> float`.

    `models` are passed through accelerator.prepare; `save` names the modules whose weights go in checkpoints."""
    out_dir = Path(out_dir)
    if not params:
        raise MedsynthError("nothing to train: the strategy left no trainable parameters")
    accelerator = accelerator or make_accelerator(cfg)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)
    n_proc = accelerator.num_processes
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * n_proc,
                              num_training_steps=cfg.max_steps * n_proc)
    # Only modules with trainable parameters go through prepare (DDP rejects modules with nothing to train).
    names = [n for n, m in models.items() if any(p.requires_grad for p in m.parameters())]
    prepared = accelerator.prepare(*(models[n] for n in names), optimizer, scheduler)
    models = {**models, **dict(zip(names, prepared[:len(names)]))}
    optimizer, scheduler = prepared[len(names)], prepared[len(names) + 1]
    ema = None
    if cfg.use_ema and ema_module is not None:
        ema = EMAModel(ema_module.parameters(), decay=cfg.ema_decay, model_cls=type(ema_module),
                       model_config=getattr(ema_module, "config", None))
        ema.to(accelerator.device)

    result = TrainResult(step=0)
    progress = {"step": 0, "micro": 0, "best_val": None, "bad_evals": 0, "null": 0, "conds": 0}
    ckpt_root = out_dir / "checkpoints"
    last = latest_checkpoint(ckpt_root) if cfg.resume else None
    if last is not None:
        for name, module in save.items():
            load_module_weights(last, name, module)
        optimizer.load_state_dict(load_state(last, "optimizer"))
        scheduler.load_state_dict(load_state(last, "lr_scheduler"))
        if ema is not None:
            ema.load_state_dict(load_state(last, "ema"))
        set_rng_state(load_state(last, "rng"), generator)
        progress = load_state(last, "progress")
        result.resumed_from = progress["step"]

    writer = _tensorboard(out_dir, progress["step"]) if accelerator.is_main_process else None
    trained = [models[n] for n in names]
    tick = time.perf_counter()
    try:
        while progress["step"] < cfg.max_steps:
            with accelerator.accumulate(*trained):
                loss, stats = loss_fn(models, progress["micro"], generator)
                if not torch.isfinite(loss):
                    raise MedsynthError(f"training loss became {float(loss)} at step {progress['step']}; "
                                        "lower the learning rate or use bf16 instead of fp16")
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if after_step is not None:
                    after_step()
            progress["micro"] += 1
            progress["null"] += stats.get("null", 0)
            progress["conds"] += stats.get("conds", 0)
            if not accelerator.sync_gradients:
                continue
            progress["step"] += 1
            step = progress["step"]
            if ema is not None:
                ema.step(ema_module.parameters())
            result.losses.append(float(loss.detach()))
            result.step_seconds.append(time.perf_counter() - tick)
            if writer is not None:
                writer.add_scalar("train/loss", float(loss.detach()), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                for key, value in stats.items():
                    writer.add_scalar(f"train/{key}", value, step)
            if val_fn is not None and cfg.validate_every and step % cfg.validate_every == 0:
                stop = _validate(val_fn, models, progress, cfg, result, writer, step, out_dir, save)
                if stop:
                    result.stopped_early = True
                    break
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                _checkpoint(ckpt_root, step, save, optimizer, scheduler, ema, generator, progress, cfg)
            tick = time.perf_counter()
            if cfg.stop_after is not None and step >= cfg.stop_after and step < cfg.max_steps:
                result.interrupted = True
                break
    finally:
        if writer is not None:
            writer.close()
    if result.stopped_early:
        _checkpoint(ckpt_root, progress["step"], save, optimizer, scheduler, ema, generator, progress, cfg)
    if ema is not None and not result.interrupted:
        ema.copy_to(ema_module.parameters())  # final weights are the EMA weights, as in diffusers' scripts
    result.step = progress["step"]
    result.best_val = progress["best_val"]
    result.null_conditions, result.conditions = progress["null"], progress["conds"]
    return result


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    try:
        return Accelerator(mixed_precision=cfg.mixed_precision,
                           gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                           cpu=not torch.cuda.is_available())
    except (ValueError, RuntimeError) as err:
        raise MedsynthError(f"mixed_precision '{cfg.mixed_precision}' is not usable here: {err}") from err


def _checkpoint(root, step, save, optimizer, scheduler, ema, generator, progress, cfg) -> None:
    states = {"optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
              "rng": rng_state(generator), "progress": dict(progress)}
    if ema is not None:
        states["ema"] = ema.state_dict()
    save_checkpoint(root, step, save, states, keep=cfg.checkpoint_limit)


def _validate(val_fn, models, progress, cfg, result, writer, step, out_dir, save) -> bool:
    """Record validation loss; keep the best weights in out_dir/best; True when patience is exhausted."""
    modes = {name: m.training for name, m in models.items()}
    for m in models.values():
        m.eval()
    with torch.no_grad():
        val = float(val_fn(models))
    for name, m in models.items():
        m.train(modes[name])
    result.val_losses.append((step, val))
    if writer is not None:
        writer.add_scalar("val/loss", val, step)
    if progress["best_val"] is None or val < progress["best_val"]:
        progress["best_val"], progress["bad_evals"] = val, 0
        from safetensors.torch import save_file
        from ..io import atomic_path
        for name, module in save.items():
            with atomic_path(out_dir / "best" / f"{name}.safetensors") as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))
        return False
    progress["bad_evals"] += 1
    return cfg.early_stopping_patience is not None and progress["bad_evals"] >= cfg.early_stopping_patience


def _tensorboard(out_dir: Path, step: int):
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=step + 1 if step else None)


# ---------------------------------------------------------------- VAE stage

def train_vae(vae, images, cfg: TrainConfig, out_dir: str | Path, val_images=None) -> TrainResult:
    """MSE + kl_weight * KL on images in [-1, 1] (choksi2025's VAE stage)."""
    vae.train()
    if cfg.gradient_checkpointing:
        vae.enable_gradient_checkpointing()

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(images), cfg.batch_size, micro, cfg.seed)
        model = models["vae"]
        batch = images.get(idx).to(next(model.parameters()).device)
        loss, stats = vae_loss(model, batch, cfg.kl_weight, generator=generator)
        return loss, stats

    def val_fn(models):
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        losses = [vae_loss(models["vae"], val_images.get(range(i, min(i + cfg.batch_size, len(val_images))))
                           .to(next(models["vae"].parameters()).device), cfg.kl_weight, generator)[0]
                  for i in range(0, len(val_images), cfg.batch_size)]
        return torch.stack(losses).mean()

    return run_training(out_dir, cfg, {"vae": vae}, {"vae": vae}, [p for p in vae.parameters()], loss_fn,
                        val_fn if val_images is not None else None, ema_module=vae)


# ---------------------------------------------------------------- diffusion stage

@dataclass
class DiffusionData:
    images: object                       # TensorImages / FileImages
    prompts: list[str]
    class_images: object | None = None   # DreamBooth prior preservation
    class_prompts: list[str] | None = None
    val_images: object | None = None
    val_prompts: list[str] | None = None


def train_diffusion(vae, unet, text_encoder, tokenizer, noise_scheduler, data: DiffusionData, cfg: TrainConfig,
                    out_dir: str | Path, cache_dir: str | Path | None = None) -> tuple[TrainResult, Strategy]:
    """Noise-prediction MSE training of `unet` (and/or text-side parameters, per strategy)."""
    if len(data.prompts) != len(data.images):
        raise MedsynthError(f"{len(data.images)} images but {len(data.prompts)} prompts")
    strategy = make_strategy(cfg.strategy, unet, text_encoder, tokenizer, cfg.placeholder_tokens,
                             cfg.initializer_token)
    if strategy.prior_preservation and (data.class_images is None or not data.class_prompts):
        raise MedsynthError(f"strategy '{cfg.strategy}' uses prior preservation: give class_images and class_prompts")
    accelerator = make_accelerator(cfg)
    device, wdtype = accelerator.device, _weight_dtype(cfg.mixed_precision)
    vae.requires_grad_(False)
    vae.to(device, wdtype).eval()
    text_trainable = strategy.train_text_encoder or bool(strategy.token_ids)
    text_encoder.to(device, torch.float32 if text_trainable or strategy.train_projection else wdtype)
    text_encoder.train(text_trainable)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if strategy.train_text_encoder:
            text_encoder.encoder.gradient_checkpointing_enable()
    unet.train(strategy.train_unet)

    cache_dir = Path(cache_dir or Path(out_dir) / "cache")
    all_prompts = list(data.prompts) + list(data.class_prompts or []) + list(data.val_prompts or [])
    latents = {}
    if cfg.cache_latents:
        for key, source in (("train", data.images), ("class", data.class_images), ("val", data.val_images)):
            if source is not None:
                latents[key] = LatentCache.build_or_load(cache_dir, vae, source)
    text_cache = (TextCache.build_or_load(cache_dir, text_encoder, tokenizer, all_prompts)
                  if cfg.cache_text and strategy.text_frozen else None)
    scale = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    n_train = noise_scheduler.config.num_train_timesteps

    def latents_for(key, source, idx, generator):
        if key in latents:
            z = latents[key].sample(idx, generator).to(device)
        else:
            with torch.no_grad():
                dist = vae.encode(source.get(idx).to(device, wdtype)).latent_dist
            noise = torch.randn(dist.mean.shape, generator=generator).to(device)
            z = (dist.mean.float() + dist.std.float() * noise)
        return ((z.float() - shift) * scale).contiguous()

    def context(models, prompts):
        te = models["text_encoder"]
        if text_cache is not None:
            states = text_cache.get(prompts).to(device, torch.float32)
            return te.projection(states) if te.projection is not None else states
        with torch.set_grad_enabled(text_trainable or strategy.train_projection):
            return encode(te, tokenizer, prompts, device).float()

    def noise_loss(models, z, ctx, generator):
        noise = torch.randn(z.shape, generator=generator).to(device)
        t = torch.randint(0, n_train, (z.shape[0],), generator=generator).to(device)
        noisy = noise_scheduler.add_noise(z, noise, t)
        kind = noise_scheduler.config.prediction_type
        target = noise if kind == "epsilon" else noise_scheduler.get_velocity(z, noise, t)
        pred = models["unet"](noisy, t, ctx).sample
        return pred.float(), target.float()

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(data.images), cfg.batch_size, micro, cfg.seed)
        z = latents_for("train", data.images, idx, generator)
        prompts = [data.prompts[i] for i in idx]
        if strategy.prior_preservation:
            cidx = batch_indices(len(data.class_images), len(idx), micro, cfg.seed + 1)
            z = torch.cat([z, latents_for("class", data.class_images, cidx, generator)])
            prompts += [data.class_prompts[i] for i in cidx]
        # CFG dropout replaces the prompt itself by "", i.e. the null-prompt embedding the sampler uses.
        drop = torch.rand(len(prompts), generator=generator) < cfg.cfg_dropout
        prompts = ["" if d else p for d, p in zip(drop.tolist(), prompts)]
        pred, target = noise_loss(models, z, context(models, prompts), generator)
        if strategy.prior_preservation:
            pred, pred_prior = pred.chunk(2)
            target, target_prior = target.chunk(2)
            loss = F.mse_loss(pred, target) + cfg.prior_loss_weight * F.mse_loss(pred_prior, target_prior)
        else:
            loss = F.mse_loss(pred, target)
        return loss, {"null": int(drop.sum()), "conds": len(prompts)}

    def val_fn(models):
        generator = torch.Generator().manual_seed(cfg.seed + 7)
        total, count = 0.0, 0
        for start in range(0, len(data.val_images), cfg.batch_size):
            idx = list(range(start, min(start + cfg.batch_size, len(data.val_images))))
            z = latents_for("val", data.val_images, idx, generator)
            pred, target = noise_loss(models, z, context(models, [data.val_prompts[i] for i in idx]), generator)
            total += float(F.mse_loss(pred, target, reduction="sum")); count += pred.numel()
        return total / count

    save = {}
    if strategy.train_unet:
        save["unet"] = unet
    if text_trainable or strategy.train_projection:
        save["text_encoder"] = text_encoder
    after = (lambda: after_optimizer_step(strategy, text_encoder)) if strategy.token_ids else None
    result = run_training(out_dir, cfg, {"unet": unet, "text_encoder": text_encoder}, save,
                          trainable_parameters(unet, text_encoder), loss_fn,
                          val_fn if data.val_images is not None else None,
                          ema_module=unet if strategy.train_unet else None, after_step=after, accelerator=accelerator)
    unet.eval(); text_encoder.eval()
    return result, strategy
