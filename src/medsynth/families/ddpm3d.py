"""Family `ddpm3d`: conditional 3D DDPM (xing2024's Cond DDPM and Cond DDPM + Text Encoder rows).

Network: MONAI's 3D `DiffusionModelUNet` whose input is the noisy volume concatenated with the one-hot mask (the
public DGM-VLC code's conditioning), with DF-GAN affine text fusion (`DFBlock`s) after its bottleneck where the entry
has a `text_encoder:` block (medsynth.models.fusion3d.AffineTextUNet3D). Noise schedule and samplers are MONAI's
(`DDPMScheduler` for training, `DDIMScheduler` or `DDPMScheduler` for sampling); loss L1 or MSE on the prediction
target (epsilon by default; the public code: 250 steps, cosine schedule, L1). One stage, `ddpm`; EMA as configured.
Sampling: each row starts from noise drawn from a generator seeded by its `seed` column, so a row's volume depends
only on its mask, prompt and seed.

Config (`models: <m>:`): `ddpm: {channels, num_res_blocks, attention, n_dfblocks, num_train_timesteps, schedule,
prediction_type, loss, train: {...TrainConfig}}`, optional `text_encoder:`; prompt sets take `sampler` (ddim | ddpm)
and `steps`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MedsynthError
from . import volume3d as v3
from .registry import StageJob

KIND = "ddpm3d"
DEFAULTS = {"channels": [16, 32, 64], "num_res_blocks": 1, "attention": None, "num_head_channels": 8,
            "norm_num_groups": 4, "n_dfblocks": 3, "num_train_timesteps": 250, "schedule": "cosine",
            "prediction_type": "epsilon", "loss": "l1"}
SCHEDULES = {"cosine": "cosine", "linear": "linear_beta", "linear_beta": "linear_beta",
             "scaled_linear_beta": "scaled_linear_beta", "sigmoid_beta": "sigmoid_beta"}


def settings(model_cfg: dict) -> dict:
    s = {**DEFAULTS, **(model_cfg.get("ddpm") or {})}
    if s["schedule"] not in SCHEDULES:
        raise MedsynthError(f"ddpm.schedule '{s['schedule']}': choose one of {', '.join(SCHEDULES)}")
    if s["loss"] not in ("l1", "mse"):
        raise MedsynthError(f"ddpm.loss '{s['loss']}': choose l1 or mse")
    return s


def scheduler(s: dict, sampler: str = "ddpm"):
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    cls = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}.get(sampler)
    if cls is None:
        raise MedsynthError(f"ddpm3d sampler '{sampler}': choose ddim or ddpm")
    return cls(num_train_timesteps=int(s["num_train_timesteps"]), schedule=SCHEDULES[s["schedule"]],
               prediction_type=s["prediction_type"], clip_sample=True)


def build(config: dict, n_mask_channels: int, text_dim: int):
    from ..models.fusion3d import AffineTextUNet3D

    s = config["ddpm"]
    return AffineTextUNet3D(1 + n_mask_channels, 1, s["channels"], s["num_res_blocks"], s["attention"], text_dim,
                            s["n_dfblocks"], s["num_head_channels"], s["norm_num_groups"])


def target(sched, images, noise, t):
    if sched.prediction_type == "epsilon":
        return noise
    if sched.prediction_type == "sample":
        return images
    return sched.get_velocity(images, noise, t)


def train_stage(stage: str, job: StageJob) -> dict:
    from ..training.loop import batch_indices, make_accelerator, run_training

    s = settings(job.model_cfg)
    cfg = v3.train_config(s, job.seed)
    torch.manual_seed(job.seed)
    images, masks, prompts = v3.load_crops(job.manifest, job.results)
    text = v3.TextConditioner(job.model_cfg.get("text_encoder"))
    if text.tokens:
        raise MedsynthError("ddpm3d fuses one pooled text vector per volume (affine DFBlocks): give the text "
                            "encoder a pooled extraction (mean, cls, pooler), not 'tokens'")
    context = text(prompts)
    config = {"kind": KIND, "ddpm": s, "text_encoder": text.entry, "text_dim": text.dim,
              "mask_channels": int(masks.shape[1]), "size": list(images.shape[2:])}
    unet = build(config, masks.shape[1], text.dim)
    sched = scheduler(s)
    accelerator = make_accelerator(cfg)
    device = accelerator.device
    rank, world = accelerator.process_index, accelerator.num_processes
    loss_of = torch.nn.functional.l1_loss if s["loss"] == "l1" else torch.nn.functional.mse_loss

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(images), cfg.batch_size, micro, cfg.seed, rank, world)
        x0, m = images[idx], masks[idx]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, sched.num_train_timesteps, (len(idx),), generator=generator)
        noisy = sched.add_noise(x0, noise, t)
        ctx = None if context is None else context[idx].to(device)
        pred = models["unet"](torch.cat([noisy, m], 1).to(device), t.to(device), ctx)
        return loss_of(pred.float(), target(sched, x0, noise, t).to(device)), {}

    result = run_training(job.work, cfg, {"unet": unet}, {"unet": unet}, list(unet.parameters()), loss_fn,
                          ema_module=unet, accelerator=accelerator)
    if accelerator.is_main_process and not result.interrupted:
        v3.save_folder(job.out, config, {"unet": unet, **text.saved_modules})
    return {"kind": KIND, "stage": stage, "steps": result.step, "losses": result.losses,
            "final_loss": result.losses[-1] if result.losses else None, "train_volumes": len(images),
            "parameters": sum(p.numel() for p in unet.parameters()), "text_dim": text.dim,
            "interrupted": result.interrupted, "resumed_from": result.resumed_from,
            "seconds_per_step": sum(result.step_seconds) / max(1, len(result.step_seconds))}


class DDPM3D:
    """A loaded conditional DDPM: U-Net, text conditioner and the training noise schedule settings."""

    def __init__(self, config: dict, unet: torch.nn.Module, text: v3.TextConditioner, device: str):
        self.config, self.unet, self.text, self.device = config, unet, text, device

    @torch.no_grad()
    def generate(self, masks: torch.Tensor, prompts: list[str], seeds, steps: int = 50,
                 sampler: str = "ddim") -> torch.Tensor:
        sched = scheduler(self.config["ddpm"], sampler)
        sched.set_timesteps(int(steps))
        masks = masks.to(self.device)
        shape = (1,) + tuple(masks.shape[2:])
        x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        x = x.to(self.device)
        ctx = self.text(prompts)
        ctx = None if ctx is None else ctx.to(self.device)
        for t in sched.timesteps:
            tt = torch.full((len(x),), int(t), device=self.device, dtype=torch.long)
            out = self.unet(torch.cat([x, masks], 1), tt, ctx)
            x, _ = sched.step(out, int(t), x)
        return x.clamp(-1, 1).float().cpu()


def load(folder: Path, device: str = "cpu") -> DDPM3D:
    config = v3.read_folder_config(folder, KIND)
    text = v3.TextConditioner(config.get("text_encoder"), device).load_saved(folder)
    if text.dim != int(config["text_dim"]):
        raise MedsynthError(f"{folder}: text encoder gives {text.dim}-d, the model was trained on {config['text_dim']}")
    unet = build(config, int(config["mask_channels"]), text.dim)
    v3.load_weights(folder, "unet", unet).to(device).eval()
    return DDPM3D(config, unet, text, device)


def sample(model: DDPM3D, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
    masks = v3.table_masks(table, results)
    prompts = table["prompt"].fillna("").astype(str).tolist()
    seeds = table["seed"].astype(int).tolist()
    sampler, steps = spec.get("sampler", "ddim"), int(spec.get("steps", 50))
    for idx in v3.batches(len(table), int(spec.get("batch_size", 4))):
        idx = list(idx)
        out = model.generate(masks[idx], [prompts[i] for i in idx], [seeds[i] for i in idx], steps, sampler)
        v3.write_volumes(out_dir, [table["file"].iloc[i] for i in idx], out, masks[idx])
    return table.assign(sampler=sampler, steps=steps)
