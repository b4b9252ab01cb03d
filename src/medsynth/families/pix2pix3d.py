"""Family `pix2pix3d`: 3D mask -> CT translation (xing2024's Pure UNet, Pix2pix and Pix2pix + Text Encoder rows).

Generator: MONAI's 3D U-Net at a fixed timestep (medsynth.models.fusion3d.Generator3D), input the one-hot mask,
output the volume in [-1, 1]; with a `text_encoder:` block the frozen encoder's context enters through MONAI's
cross-attention. Discriminator: MONAI's 3D PatchGAN on (volume, mask), least-squares `PatchAdversarialLoss`.
Loss: l1_weight * L1 + adversarial_weight * adversarial; adversarial_weight 0 is the "Pure UNet" baseline (no
discriminator is built). One stage, `pix2pix`; the discriminator's optimiser is checkpointed with the generator's,
so a resumed run equals an uninterrupted one. Sampling is one forward pass per row (deterministic: the seed
column is recorded but the generator takes no noise, as in pix2pix at test time without dropout).

Config (`models: <m>:`): `pix2pix: {channels, num_res_blocks, attention, l1_weight, adversarial_weight,
discriminator: {channels, num_layers}, train: {...TrainConfig}}`, optional `text_encoder:`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MedsynthError
from . import volume3d as v3
from .registry import StageJob

KIND = "pix2pix3d"
DEFAULTS = {"channels": [16, 32, 64], "num_res_blocks": 1, "attention": None, "num_head_channels": 8,
            "norm_num_groups": 4, "l1_weight": 100.0, "adversarial_weight": 1.0,
            "discriminator": {"channels": 16, "num_layers": 2, "learning_rate": None}}


def settings(model_cfg: dict) -> dict:
    block = {**DEFAULTS, **(model_cfg.get("pix2pix") or {})}
    block["discriminator"] = {**DEFAULTS["discriminator"], **(block.get("discriminator") or {})}
    return block


def build(config: dict, n_mask_channels: int, text_dim: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    from ..models.fusion3d import Generator3D, patch_discriminator

    s = config["pix2pix"]
    gen = Generator3D(n_mask_channels, 1, s["channels"], s["num_res_blocks"], s["attention"], text_dim,
                      s["num_head_channels"], s["norm_num_groups"])
    disc = None
    if float(s["adversarial_weight"]) > 0:
        disc = patch_discriminator(1 + n_mask_channels, s["discriminator"]["channels"],
                                   s["discriminator"]["num_layers"])
    return gen, disc


class Pix2PixLoss(torch.nn.Module):
    """forward(images, masks, context) -> (generator loss, stats); steps the discriminator first (its own Adam)."""

    def __init__(self, gen, disc, l1_weight: float, adv_weight: float, d_optimizer=None):
        super().__init__()
        from monai.losses import PatchAdversarialLoss

        self.gen, self.disc = gen, disc
        self.l1_weight, self.adv_weight = float(l1_weight), float(adv_weight)
        self.adv = PatchAdversarialLoss(criterion="least_squares")
        self.d_optimizer = d_optimizer

    def forward(self, images, masks, context=None):
        fake = self.gen(masks, context)
        stats = {}
        loss = self.l1_weight * torch.nn.functional.l1_loss(fake, images)
        stats["l1"] = float(loss.detach()) / max(self.l1_weight, 1e-12)
        if self.disc is not None:
            self.d_optimizer.zero_grad(set_to_none=True)
            real_logits = self.disc(torch.cat([images, masks], 1))[-1]
            fake_logits = self.disc(torch.cat([fake.detach(), masks], 1))[-1]
            d_loss = 0.5 * (self.adv(real_logits, target_is_real=True, for_discriminator=True)
                            + self.adv(fake_logits, target_is_real=False, for_discriminator=True))
            d_loss.backward()
            self.d_optimizer.step()
            self.disc.requires_grad_(False)  # the generator's loss must not touch the discriminator's gradients
            g_adv = self.adv(self.disc(torch.cat([fake, masks], 1))[-1], target_is_real=True,
                             for_discriminator=False)
            self.disc.requires_grad_(True)
            loss = loss + self.adv_weight * g_adv
            stats.update(d_loss=float(d_loss.detach()), g_adv=float(g_adv.detach()))
        return loss, stats


def train_stage(stage: str, job: StageJob) -> dict:
    from ..training.loop import batch_indices, make_accelerator, run_training

    s = settings(job.model_cfg)
    cfg = v3.train_config(s, job.seed)
    torch.manual_seed(job.seed)
    images, masks, prompts = v3.load_crops(job.manifest, job.results)
    text = v3.TextConditioner(job.model_cfg.get("text_encoder"))
    context = text(prompts)
    config = {"kind": KIND, "pix2pix": s, "text_encoder": text.entry, "text_dim": text.dim,
              "mask_channels": int(masks.shape[1]), "size": list(images.shape[2:])}
    gen, disc = build(config, masks.shape[1], text.dim)
    accelerator = make_accelerator(cfg)
    device = accelerator.device
    extra, save = {}, {"generator": gen}
    d_opt = None
    if disc is not None:
        disc.to(device)
        lr = s["discriminator"]["learning_rate"] or cfg.learning_rate
        d_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2))
        extra["d_optimizer"] = d_opt
        save["discriminator"] = disc
    trainer = Pix2PixLoss(gen, disc, s["l1_weight"], s["adversarial_weight"], d_opt)
    rank, world = accelerator.process_index, accelerator.num_processes

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(images), cfg.batch_size, micro, cfg.seed, rank, world)
        ctx = None if context is None else context[idx].to(device)
        return models["pix2pix"](images[idx].to(device), masks[idx].to(device), ctx)

    result = run_training(job.work, cfg, {"pix2pix": trainer}, save, list(gen.parameters()), loss_fn,
                          ema_module=gen, accelerator=accelerator, extra_states=extra)
    if accelerator.is_main_process and not result.interrupted:
        v3.save_folder(job.out, config, {"generator": gen, **text.saved_modules})
    return {"kind": KIND, "stage": stage, "steps": result.step, "losses": result.losses,
            "final_loss": result.losses[-1] if result.losses else None, "train_volumes": len(images),
            "parameters": sum(p.numel() for p in gen.parameters()), "text_dim": text.dim,
            "adversarial": disc is not None, "interrupted": result.interrupted,
            "resumed_from": result.resumed_from,
            "seconds_per_step": sum(result.step_seconds) / max(1, len(result.step_seconds))}


class Pix2Pix3D:
    """A loaded generator with its text conditioner."""

    def __init__(self, config: dict, gen: torch.nn.Module, text: v3.TextConditioner, device: str):
        self.config, self.gen, self.text, self.device = config, gen, text, device

    @torch.no_grad()
    def generate(self, masks: torch.Tensor, prompts: list[str], seeds=None) -> torch.Tensor:
        ctx = self.text(prompts)
        return self.gen(masks.to(self.device), None if ctx is None else ctx.to(self.device)).float().cpu()


def load(folder: Path, device: str = "cpu") -> Pix2Pix3D:
    config = v3.read_folder_config(folder, KIND)
    text = v3.TextConditioner(config.get("text_encoder"), device).load_saved(folder)
    if text.dim != int(config["text_dim"]):
        raise MedsynthError(f"{folder}: text encoder gives {text.dim}-d, the model was trained on {config['text_dim']}")
    gen, _ = build(config, int(config["mask_channels"]), text.dim)
    v3.load_weights(folder, "generator", gen).to(device).eval()
    return Pix2Pix3D(config, gen, text, device)


def sample(model: Pix2Pix3D, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
    masks = v3.table_masks(table, results)
    prompts = table["prompt"].fillna("").astype(str).tolist()
    for idx in v3.batches(len(table), int(spec.get("batch_size", 4))):
        idx = list(idx)
        out = model.generate(masks[idx], [prompts[i] for i in idx])
        v3.write_volumes(out_dir, [table["file"].iloc[i] for i in idx], out, masks[idx])
    return table.assign(sampler="generator", steps=1)
