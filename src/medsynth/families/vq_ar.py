"""Family `vq_ar`: a VQ image tokenizer + a causal LLM whose vocabulary is extended with the image tokens
(LLM-CXR / chen2024 style). Stages:

- `vq`: diffusers `VQModel` trained on the entry's train split with L1 reconstruction + codebook/commitment loss +
  a patch-GAN adversarial loss (MONAI `PatchDiscriminator`, least-squares); no perceptual loss (it would need
  downloaded weights). The discriminator trains in the same optimizer step: its loss sees detached fakes, and the
  generator's adversarial term runs it with detached parameters, so each loss only moves its own network.
- `lm`: the entry's `llm:` (medsynth.models.llm) with K + 2 new token embeddings (K VQ codes, begin/end of image)
  fine-tuned on "report text -> image tokens" sequences: cross-entropy of each image token over the image-token
  range only. `train_layers` picks how many top decoder layers train (0: all). `prompt_dropout` blanks the text of
  that fraction of training rows (seeded per step), so the same LLM also learns the unconditional image prior.
  `keypatch_prompt` (chen2024 Module 2.3): the stage mines the anatomy/pathology vocabulary of its training prompts,
  finds each word's key patches with the trained VQ encoder (medsynth.keypatches) and puts the key-patch image
  tokens of the words a prompt names (outside negations) after its text, at training and sampling alike; the
  word -> codes table is saved in `vq_ar.json`.

Sampling writes exactly H*W image tokens per row, drawn from the image-token logits only (top-p, temperature),
with one generator per row seeded by the row's seed, then decodes them with the VQ decoder. `guidance_scale` w != 1
samples from classifier-free guided logits u + w (c - u) (c: with the prompt, u: blank prompt; as in Parti and
LlamaGen); it needs a model trained with `prompt_dropout` > 0. The saved `lm` folder
holds the LLM (`lm/`, safetensors), the tokenizer, the VQ model (`vq/`) and `vq_ar.json` (token layout, LLM hash).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MedsynthError
from ..io import atomic_path, read_json, write_json
from .registry import StageJob

META = "vq_ar.json"


# ---------------------------------------------------------------- VQ tokenizer

def build_vq(model_cfg: dict):
    from diffusers import VQModel

    c = model_cfg["vq"]
    blocks = tuple(c.get("block_out_channels", [32, 64, 64]))
    vq = VQModel(in_channels=1, out_channels=1, block_out_channels=blocks,
                   down_block_types=("DownEncoderBlock2D",) * len(blocks),
                   up_block_types=("UpDecoderBlock2D",) * len(blocks), layers_per_block=c.get("layers_per_block", 1),
                   latent_channels=c.get("latent_channels", 4), num_vq_embeddings=c.get("num_vq_embeddings", 256),
                   vq_embed_dim=c.get("vq_embed_dim", 4), norm_num_groups=c.get("norm_num_groups", 16),
                   sample_size=model_cfg["image_size"], mid_block_add_attention=c.get("attention", False))
    # diffusers' `legacy` quantizer loss (as taming-transformers) weights the codebook term x0.25 and the commitment
    # x1; `quantizer_loss: vqvae` gives the VQ-VAE paper's weighting (codebook x1, commitment x0.25). Only training
    # reads it.
    vq.quantize.legacy = c.get("quantizer_loss", "legacy") == "legacy"
    return vq


def build_discriminator(model_cfg: dict):
    from monai.networks.nets import PatchDiscriminator

    d = model_cfg["vq"].get("discriminator", {})
    return PatchDiscriminator(spatial_dims=2, channels=d.get("channels", 32), in_channels=1, out_channels=1,
                              num_layers_d=d.get("layers", 2))


@torch.no_grad()
def restart_dead_codes(vq, images: torch.Tensor, generator: torch.Generator) -> int:
    """Re-seed every code no latent of `images` maps to with one of those latents (plus 1 % noise): dead codes come
    back where the encoder's outputs are (as in Jukebox / SoundStream). Returns how many were restarted."""
    z = vq.encode(images).latents.permute(0, 2, 3, 1).reshape(-1, vq.config.vq_embed_dim)
    book = vq.quantize.embedding.weight
    idx = torch.argmin(torch.cdist(z, book), dim=1)
    dead = torch.nonzero(torch.bincount(idx, minlength=book.shape[0]) == 0).flatten()
    if len(dead):
        pick = torch.randint(len(z), (len(dead),), generator=generator)
        noise = torch.randn((len(dead), z.shape[1]), generator=generator) * 0.01 * z.std()
        book.data[dead.to(book.device)] = (z[pick.to(z.device)].cpu() + noise).to(book.device, book.dtype)
    return len(dead)


def grid_size(vq) -> int:
    return vq.config.sample_size // 2 ** (len(vq.config.block_out_channels) - 1)


class VQGANLoss(torch.nn.Module):
    """forward(images, adversarial) -> (loss, stats) for the VQ model and its discriminator together."""

    def __init__(self, vq, disc, adv_weight: float):
        super().__init__()
        self.vq, self.disc, self.adv_weight = vq, disc, adv_weight

    def forward(self, images: torch.Tensor, adversarial: bool = True):
        from monai.losses import PatchAdversarialLoss

        out = self.vq(images)
        recon, commit = out.sample, out.commit_loss.mean()
        rec = F.l1_loss(recon, images)
        loss = rec + commit
        stats = {"l1": float(rec.detach()), "commit": float(commit.detach())}
        if adversarial and self.adv_weight > 0:
            adv = PatchAdversarialLoss(criterion="least_squares")
            frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
            fake_logits = torch.func.functional_call(self.disc, frozen, (recon,))[-1]
            g_loss = adv(fake_logits, target_is_real=True, for_discriminator=False)
            d_loss = 0.5 * (adv(self.disc(recon.detach())[-1], target_is_real=False, for_discriminator=True)
                            + adv(self.disc(images)[-1], target_is_real=True, for_discriminator=True))
            loss = loss + self.adv_weight * g_loss + d_loss
            stats.update(g_adv=float(g_loss.detach()), d_adv=float(d_loss.detach()))
        return loss, stats


RUN_CONTROL = ("stop_after", "progress_bar", "checkpoint_every", "checkpoint_limit")


def run_identity(model_cfg: dict, stage: str) -> dict:
    """What a stage's checkpoints depend on (a resumed run may change when it stops, not what it trains); the lm
    stage also depends on the vq stage it tokenises with."""
    keep = ("image_size", "vq") if stage == "vq" else ("image_size", "vq", "lm")
    ident = {k: model_cfg.get(k) for k in keep}
    for s in ("vq", "lm"):
        if isinstance(ident.get(s), dict) and "train" in ident[s]:
            ident[s] = {**ident[s], "train": {k: v for k, v in ident[s]["train"].items() if k not in RUN_CONTROL}}
    return ident


def train_vq_stage(job: StageJob) -> dict:
    from ..training.loop import batch_indices, make_accelerator, run_training
    from ..training.stage_setup import is_main, prepare_work_dir, split_rows, train_config
    from ..training.stages import _images

    cfg_m = job.model_cfg
    torch.manual_seed(job.seed)
    vq, disc = build_vq(cfg_m), build_discriminator(cfg_m)
    train = _images(split_rows(job.manifest, ["train"]), job.results, cfg_m["image_size"], 1)
    cfg = train_config(cfg_m["vq"]["train"], job.seed)
    prepare_work_dir(job.work, {"stage": "vq", "model": run_identity(cfg_m, "vq"), "seed": job.seed})
    accelerator = make_accelerator(cfg)
    loss_module = VQGANLoss(vq, disc, float(cfg_m["vq"].get("adv_weight", 0.1)))
    disc_start = int(cfg_m["vq"].get("disc_start", 0))
    restart = cfg_m["vq"].get("codebook_restart", {}) or {}
    every, until = int(restart.get("every", 0)), int(restart.get("until", 0))
    probe = train.get(range(min(int(restart.get("images", 64)), len(train)))) if every else None
    restarted = []

    def loss_fn(models, micro, generator):
        if every and micro and micro % every == 0 and micro <= until:
            # Seeded by the micro-step and computed from fixed probe images, so a resumed run restarts the same codes.
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + micro)
            restarted.append(restart_dead_codes(vq, probe.to(accelerator.device), gen))
        idx = batch_indices(len(train), cfg.batch_size, micro, cfg.seed, accelerator.process_index,
                            accelerator.num_processes)
        return models["vqgan"](train.get(idx).to(accelerator.device), micro >= disc_start)

    result = run_training(job.work, cfg, {"vqgan": loss_module}, {"vq": vq, "disc": disc},
                          [p for p in loss_module.parameters()], loss_fn, accelerator=accelerator)
    vq.eval().to("cpu")
    codes, err, count = [], 0.0, 0
    with torch.no_grad():
        for start in range(0, len(train), 16):
            batch = train.get(range(start, min(start + 16, len(train))))
            codes.append(encode_codes(vq, batch))
            err += float((decode_codes(vq, codes[-1]) - batch).abs().sum()); count += batch.numel()
    used = torch.cat(codes).unique().numel()
    if is_main():
        vq.save_pretrained(job.out, safe_serialization=True)
    return {"stage": "vq", "steps": result.step, "resumed_from": result.resumed_from, "train_loss": result.losses,
            "train_l1": err / count, "codes_used": used, "codebook_size": vq.config.num_vq_embeddings,
            "codes_restarted": restarted,
            "tokens_per_image": grid_size(vq) ** 2, "n_train": len(train)}


def encode_codes(vq, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [-1, 1] -> (B, h*w) code indices (on the CPU, wherever the VQ runs)."""
    with torch.no_grad():
        h = vq.encode(images.to(vq.device)).latents
        _, _, (_, _, idx) = vq.quantize(h)
    return idx.reshape(images.shape[0], -1).cpu()


def decode_codes(vq, codes: torch.Tensor) -> torch.Tensor:
    """(B, h*w) code indices -> (B, 1, H, W) images in [-1, 1]."""
    g = grid_size(vq)
    with torch.no_grad():
        z = vq.quantize.get_codebook_entry(codes.reshape(-1), (codes.shape[0], g, g, vq.config.vq_embed_dim))
        return vq.decode(z, force_not_quantize=True).sample.clamp(-1, 1)


# ---------------------------------------------------------------- LLM over text + image tokens

def text_ids(tokenizer, prompts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, length) ids and mask: the first `length` tokens of each prompt, so every row's sequence is
    laid out identically whatever the batch (row i depends only on its own prompt)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(prompts), length), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for i, p in enumerate(prompts):
        toks = tokenizer(str(p), add_special_tokens=False)["input_ids"][:length]
        if toks:
            ids[i, length - len(toks):] = torch.tensor(toks)
            mask[i, length - len(toks):] = 1
    return ids, mask


def keypatch_codes(prompt: str, codes_by_word: dict, per_word: int, limit: int) -> list[int]:
    """The key-patch image codes a prompt names (chen2024 Module 2.3): the top `per_word` codes of each vocabulary
    word it mentions outside negated clauses, pathology words first, then anatomy, each in the order of the text;
    at most `limit`."""
    from ..anatomy_pathology import positive_words

    words = list(dict.fromkeys(w for w in positive_words(prompt) if w in codes_by_word))
    words.sort(key=lambda w: codes_by_word[w]["category"] != "pathology")      # stable: text order kept within
    out = [c for w in words for c in codes_by_word[w]["codes"][:per_word]]
    return out[:limit]


def prompt_prefix(tokenizer, prompts: list[str], meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L [+ Kp]) ids and mask of what precedes <boi>: the left-padded text (text_ids) and, for a model trained
    with key-patch prompting, Kp left-padded slots holding the key-patch image tokens of the words the text names."""
    ids, mask = text_ids(tokenizer, prompts, meta["max_text_tokens"])
    kp = meta.get("keypatch_prompt")
    if not kp:
        return ids, mask
    n = int(kp["tokens"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kid = torch.full((len(prompts), n), pad, dtype=torch.long)
    kmask = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        c = keypatch_codes(p, kp["codes"], int(kp["per_word"]), n)
        if c:
            kid[i, n - len(c):] = torch.tensor(c) + meta["image_token_base"]
            kmask[i, n - len(c):] = 1
    return torch.cat([ids, kid], 1), torch.cat([mask, kmask], 1)


def keypatch_prompt_table(vq, images, prompts: list[str], spec: dict) -> dict:
    """word -> {category, codes}: the key patches (medsynth.keypatches) of the vocabulary mined from the training
    prompts, over the first `images` training images (batched), `top` codes per word, best first."""
    import numpy as np

    from ..anatomy_pathology import mine_vocabulary
    from ..keypatches import key_patches, patch_features

    n = min(int(spec.get("images", 2000)), len(images))
    feats, codes = zip(*(patch_features(vq, images.get(range(s, min(s + 32, n)))) for s in range(0, n, 32)))
    vocab = mine_vocabulary(prompts[:n], int(spec.get("top_k", 300)))
    table = key_patches(np.concatenate(feats), np.concatenate(codes), prompts[:n], vocab, int(spec.get("top", 5)))
    return {w: {"category": g["category"].iloc[0], "codes": [int(c) for c in g["code"]]}
            for w, g in table.groupby("word", sort=False)}


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def image_token_logits(lm, meta: dict, prompts_ids, prompts_mask, codes: torch.Tensor) -> torch.Tensor:
    """Teacher-forced logits (B, N, K) of the N image tokens over the K image-token ids, given `codes` as the input
    image tokens (the targets, or a corrupted copy of them)."""
    base, k, boi = meta["image_token_base"], meta["codebook_size"], meta["boi_id"]
    b = codes.shape[0]
    device = lm.get_input_embeddings().weight.device     # text and codes come from the CPU-side tables
    ids = torch.cat([prompts_ids.cpu(), torch.full((b, 1), boi, dtype=torch.long), codes[:, :-1].cpu() + base], 1)
    mask = torch.cat([prompts_mask.cpu(), torch.ones((b, 1 + codes.shape[1] - 1), dtype=torch.long)], 1)
    hidden = _decoder(lm)(input_ids=ids.to(device), attention_mask=mask.to(device),
                          position_ids=_positions(mask).to(device)).last_hidden_state
    return image_head(lm, meta, hidden[:, prompts_ids.shape[1]:])


def _decoder(lm):
    """The transformer under the LM head, so logits are computed for the image tokens only."""
    return lm.model


class ImageTokenLM(torch.nn.Module):
    """forward(text ids, mask, codes) -> image-token logits: the trained call in one module, so DDP (multi-GPU)
    sees the whole forward."""

    def __init__(self, lm, meta: dict):
        super().__init__()
        self.lm, self.meta = lm, meta

    def forward(self, ids, mask, codes):
        return image_token_logits(self.lm, self.meta, ids, mask, codes)


def image_head(lm, meta: dict, hidden: torch.Tensor) -> torch.Tensor:
    """Logits of the image-token rows of the output head only (not the whole text vocabulary)."""
    head = lm.get_output_embeddings()
    base, k = meta["image_token_base"], meta["codebook_size"]
    bias = None if head.bias is None else head.bias[base:base + k]
    return F.linear(hidden, head.weight[base:base + k], bias)


class TrainedPart(torch.nn.Module):
    """The LLM's trained modules (output head, input embeddings if trained, top decoder layers, final norm): what
    checkpoints hold, so a checkpoint is not the whole frozen LLM."""

    def __init__(self, lm, layers: int, embeddings: bool):
        super().__init__()
        self.head = lm.get_output_embeddings()
        self.embed = lm.get_input_embeddings() if embeddings else None
        all_layers = lm.model.layers
        self.layers = torch.nn.ModuleList(all_layers if layers <= 0 else all_layers[-layers:])
        self.norm = lm.model.norm


def untie_head(lm) -> None:
    """Give the LLM its own output head (a copy of the tied input embeddings), so the head trains while the input
    embeddings stay frozen and backpropagation stops at the first trained layer."""
    head = lm.get_output_embeddings()
    if head.weight is lm.get_input_embeddings().weight:
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
    lm.config.tie_word_embeddings = False
    if hasattr(lm.config, "get_text_config"):
        lm.config.get_text_config().tie_word_embeddings = False


def prepare_lm(lm, codebook: int, layers: int, embeddings: bool = True):
    """Append codebook + 2 token embeddings (image codes, begin/end of image); freeze all but the trained part
    (`embeddings: false` keeps the input embeddings, the new ones at their mean-resized start, frozen: far cheaper,
    as the backward pass then only runs through the trained top layers)."""
    base = lm.get_input_embeddings().weight.shape[0]
    lm.resize_token_embeddings(base + codebook + 2, mean_resizing=True)
    if not embeddings:
        untie_head(lm)
    lm.requires_grad_(False)
    part = TrainedPart(lm, layers, embeddings)
    part.requires_grad_(True)
    meta = {"image_token_base": base, "codebook_size": codebook, "boi_id": base + codebook,
            "eoi_id": base + codebook + 1, "vocab_size": base + codebook + 2, "trained_layers": layers,
            "trained_embeddings": embeddings}
    return part, meta


def train_lm_stage(job: StageJob) -> dict:
    from diffusers import VQModel

    from ..models.llm import load_causal_lm
    from ..training.loop import batch_indices, make_accelerator, run_training
    from ..training.stage_setup import is_main, prepare_work_dir, split_rows, train_config
    from ..training.stages import _images

    cfg_m = job.model_cfg
    c = cfg_m["lm"]
    if "vq" not in job.inputs:
        raise MedsynthError("the lm stage of a vq_ar model needs its trained vq stage")
    from ..devices import job_device

    # Tokenising the train split (and key-patch features) runs where the LM trains: at paper scale that is every
    # training image through a 256-px VQ encoder.
    vq = VQModel.from_pretrained(job.inputs["vq"]).eval().to(job_device(cfg_m.get("gpu", 0)))
    rows = split_rows(job.manifest, ["train"])
    prompts = rows["prompt"].fillna("").astype(str).tolist()
    images = _images(rows, job.results, cfg_m["image_size"], 1)
    codes = torch.cat([encode_codes(vq, images.get(range(s, min(s + 16, len(images)))))
                       for s in range(0, len(images), 16)])
    lm, tokenizer, info = load_causal_lm(c["llm"], texts=prompts, seed=job.seed)
    part, meta = prepare_lm(lm, vq.config.num_vq_embeddings, int(c.get("train_layers", 0)),
                            bool(c.get("train_embeddings", True)))
    length = int(c.get("max_text_tokens", 48))
    dropout = float(c.get("prompt_dropout", 0.0))
    noise = float(c.get("image_token_noise", 0.0))
    meta.update(tokens_per_image=codes.shape[1], grid=grid_size(vq), image_size=cfg_m["image_size"],
                max_text_tokens=length, llm=info, prompt_dropout=dropout)
    kp = c.get("keypatch_prompt")
    if kp:
        meta["keypatch_prompt"] = {"tokens": int(kp.get("tokens", 16)), "per_word": int(kp.get("per_word", 2)),
                                   "codes": keypatch_prompt_table(vq, images, prompts, kp)}
    ids, mask = prompt_prefix(tokenizer, prompts, meta)
    blank_ids, _ = prompt_prefix(tokenizer, [""], meta)
    cfg = train_config(c["train"], job.seed)
    prepare_work_dir(job.work, {"stage": "lm", "model": run_identity(cfg_m, "lm"), "seed": job.seed})
    accelerator = make_accelerator(cfg)
    lm.train()

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(codes), cfg.batch_size, micro, cfg.seed, accelerator.process_index,
                            accelerator.num_processes)
        rows_ids, rows_mask = ids[idx], mask[idx]
        if dropout > 0:
            # Seeded by the micro-step (not the shared generator), so a resumed run blanks the same rows.
            drop = torch.rand(len(idx), generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + micro)) < dropout
            rows_ids = torch.where(drop[:, None], blank_ids, rows_ids)
            rows_mask = torch.where(drop[:, None], torch.zeros_like(rows_mask), rows_mask)
        inputs = codes[idx]
        if noise > 0:
            # Corrupt the teacher-forced image tokens (not the targets): the image prefix alone then no longer
            # identifies a memorised training image, so the text has to carry what the image shows.
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + micro + 7)
            hit = torch.rand(inputs.shape, generator=g) < noise
            inputs = torch.where(hit, torch.randint(meta["codebook_size"], inputs.shape, generator=g), inputs)
        logits = models["lm"](rows_ids, rows_mask, inputs)
        target = codes[idx].to(logits.device)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        return loss, {"token_acc": float((logits.argmax(-1) == target).float().mean())}

    result = run_training(job.work, cfg, {"lm": ImageTokenLM(lm, meta)}, {"lm": part}, [p for p in part.parameters()], loss_fn,
                          accelerator=accelerator)
    lm.eval()
    reliance = None
    held = job.manifest[job.manifest["split"].isin(["val", "test"])].reset_index(drop=True)
    if len(held) > 1:
        held_images = _images(held, job.results, cfg_m["image_size"], 1)
        held_codes = torch.cat([encode_codes(vq, held_images.get(range(s, min(s + 16, len(held)))))
                                for s in range(0, len(held), 16)])
        reliance = {"split": "val+test", "n": len(held), **text_reliance(
            lm, meta, tokenizer, held["prompt"].fillna("").astype(str).tolist(), held_codes)}
    if is_main():
        save_model(job.out, lm, tokenizer, vq.to("cpu"), meta)
    return {"stage": "lm", "steps": result.step, "resumed_from": result.resumed_from, "train_loss": result.losses,
            "step_seconds": result.step_seconds, "n_train": len(codes), "text_reliance": reliance, "trained_parameters":
            sum(p.numel() for p in part.parameters()), **{k: meta[k] for k in ("tokens_per_image", "codebook_size")},
            "llm": info}


@torch.no_grad()
def text_reliance(lm, meta: dict, tokenizer, prompts: list[str], codes: torch.Tensor, batch: int = 16) -> dict:
    """Mean negative log-likelihood per image token of images given their own report, another image's report (the
    reports rotated by one) and a blank prompt. Own ~= other ~= blank: the LM draws images without reading the text,
    so prompting a finding cannot change what it draws."""
    arms = {"own_report": prompts, "other_report": prompts[1:] + prompts[:1], "blank": [""] * len(prompts)}
    out = {}
    for arm, texts in arms.items():
        total = 0.0
        for s in range(0, len(texts), batch):
            ids, mask = prompt_prefix(tokenizer, texts[s:s + batch], meta)
            logits = image_token_logits(lm, meta, ids, mask, codes[s:s + batch]).float()
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           codes[s:s + batch].reshape(-1).to(logits.device), reduction="sum"))
        out[f"nll_{arm}"] = total / codes.numel()
    return out


def save_model(out: Path, lm, tokenizer, vq, meta: dict) -> None:
    out = Path(out)
    for sub in ("lm", "vq"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    lm.save_pretrained(out / "lm", safe_serialization=True)
    tokenizer.save_pretrained(out / "lm")
    vq.save_pretrained(out / "vq", safe_serialization=True)
    write_json(meta, out / META)


def train_stage(stage: str, job: StageJob) -> dict:
    return train_vq_stage(job) if stage == "vq" else train_lm_stage(job)


class VQARModel:
    def __init__(self, lm, tokenizer, vq, meta: dict):
        self.lm, self.tokenizer, self.vq, self.meta = lm, tokenizer, vq, meta


def load(folder: Path, device: str = "cpu") -> VQARModel:
    from diffusers import VQModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / META).is_file():
        raise MedsynthError(f"{folder} is not a trained vq_ar model (no {META})")
    lm = AutoModelForCausalLM.from_pretrained(folder / "lm").float().to(device).eval()
    return VQARModel(lm, AutoTokenizer.from_pretrained(folder / "lm"),
                     VQModel.from_pretrained(folder / "vq").to(device).eval(), read_json(folder / META))


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) > top_p          # keep the smallest set reaching top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


@torch.no_grad()
def generate_codes(model: VQARModel, prompts: list[str], seeds: list[int], temperature: float = 1.0,
                   top_p: float = 1.0, guidance_scale: float = 1.0) -> torch.Tensor:
    """(B, N) image codes: N autoregressive steps with a KV cache, each drawn from the image-token logits only;
    with guidance_scale != 1 a blank-prompt copy of the batch runs beside it (classifier-free guidance)."""
    meta, lm = model.meta, model.lm
    device = next(lm.parameters()).device
    base, n, b = meta["image_token_base"], meta["tokens_per_image"], len(prompts)
    guided = guidance_scale != 1.0
    ids, mask = prompt_prefix(model.tokenizer, list(prompts) + ([""] * b if guided else []), meta)
    rows = ids.shape[0]
    ids = torch.cat([ids, torch.full((rows, 1), meta["boi_id"], dtype=torch.long)], 1)
    mask = torch.cat([mask, torch.ones((rows, 1), dtype=torch.long)], 1)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    decoder = _decoder(lm)
    out = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=_positions(mask).to(device),
                  use_cache=True)
    codes = torch.zeros((b, n), dtype=torch.long)
    pos = _positions(mask)[:, -1:]
    for t in range(n):
        logits = image_head(lm, meta, out.last_hidden_state[:, -1]).float().cpu()
        if guided:
            logits = logits[b:] + guidance_scale * (logits[:b] - logits[b:])
        logits = _top_p(logits / max(temperature, 1e-6), top_p)
        probs = logits.softmax(-1)
        codes[:, t] = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(gens)])
        if t == n - 1:
            break
        mask = torch.cat([mask, torch.ones((rows, 1), dtype=torch.long)], 1)
        pos = pos + 1
        step = codes[:, t:t + 1].repeat(rows // b, 1) + base
        out = decoder(input_ids=step.to(device), attention_mask=mask.to(device),
                      position_ids=pos.to(device), past_key_values=out.past_key_values, use_cache=True)
    return codes


def sample(model: VQARModel, table, out_dir: Path, spec: dict, results: Path, device: str = "cpu"):
    from ..sampling.txt2img import to_pil

    batch = int(spec.get("batch_size", 8))
    temperature, top_p = float(spec.get("temperature", 1.0)), float(spec.get("top_p", 0.92))
    guidance = float(spec.get("guidance_scale", 1.0))
    if guidance != 1.0 and not model.meta.get("prompt_dropout"):
        raise MedsynthError(f"guidance_scale {guidance} needs a vq_ar model trained with lm.prompt_dropout > 0 "
                            "(this one never saw a blank prompt)")
    prompts, seeds = table["prompt"].astype(str).tolist(), table["seed"].astype(int).tolist()
    for start in range(0, len(table), batch):
        sl = slice(start, start + batch)
        codes = generate_codes(model, prompts[sl], seeds[sl], temperature, top_p, guidance)
        images = decode_codes(model.vq, codes.to(model.vq.device)).cpu()
        for img, name in zip(images, table["file"].iloc[sl]):
            with atomic_path(Path(out_dir) / name) as tmp:
                to_pil((img + 1) / 2).save(tmp, format="PNG")
    return table.assign(sampler="autoregressive", temperature=temperature, top_p=top_p, guidance_scale=guidance,
                        tokens_per_image=model.meta["tokens_per_image"], llm=model.meta["llm"].get("name"))
