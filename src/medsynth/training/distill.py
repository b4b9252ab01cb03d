"""Textual projection by distillation (chambon2022 Study 3): strategy `projection_distill`.

The pretrained model's own text encoder (the *base* encoder B: CLIP in Stable Diffusion, whatever the checkpoint
ships otherwise) is replaced by an in-domain encoder E (CXR-BERT-specialized in the paper) followed by a projection
head P (chambon2022: Linear -> LayerNorm -> ReLU -> Linear). Only P trains, with an MSE loss that maps E's states
into B's space on a text corpus; E's body, B, the U-Net and the VAE are frozen and saved bit-identical. No image
is used. The result is the usual diffusers pipeline folder (the base's VAE, U-Net and sampling scheduler; E + P as
a `ConditioningTextEncoder`; E's tokenizer), so the generic sample rule samples it.

What the U-Net consumes, and so what P must reproduce, is B's cross-attention context as StableDiffusionPipeline
builds it: B's tokenizer pads every text to the context length L (the base tokenizer's max_length), B runs with
or without the attention mask exactly as the pipeline calls it (SD's CLIP: none), and any projection head of B is
applied: c_B(x) in R^{L x D}, with D the U-Net's cross-attention width. The U-Net attends to all L positions
(padding included; SD passes no mask to the U-Net), so all of them are part of the target.

Levels (set by E's `extraction`):
- document (`cls`, `mean`, `pooler`, `model_specific`): E gives one vector e(x); the saved encoder broadcasts
  P(e(x)) to all L positions (cross-attention over L identical keys = attention to that one key). The loss is
  || P(e(x)) - mean_i c_B(x)_i ||^2 averaged over D: the unmasked mean over all L positions is the single vector
  closest in MSE to the whole context the U-Net sees, and the broadcast output's MSE against the full context
  equals this loss plus a constant (the spread of c_B(x) over positions), with the same gradient. The summary
  also records that full-context MSE (`val_context_mse`), which is what the U-Net actually gets.
- token (`tokens`): E's tokenizer pads to the same L, and P maps E's L per-token states position-wise onto B's:
  || P(h_E(x)_i) - c_B(x)_i ||^2 averaged over all L positions and D. The two tokenizers split text differently,
  so position i is not the same word piece in both; no resampling is done, because at sampling time only E's
  tokenizer exists (the saved encoder is P(E(x)) alone), and the U-Net must get an L-position context from it.
  All L positions count, padding included: a loss over only the positions valid in both would leave P's output
  at E's padding positions unconstrained, yet the U-Net attends to them. P acts per vector, so what it can learn
  is what E's contextual states (which carry position and the whole text) allow.

The null prompt "" is always in the training corpus, so classifier-free guidance's unconditional branch is mapped
too. Corpus: the distinct non-empty prompts of the model manifest's train rows, plus an optional text source
(`diffusion.train.distill_corpus: {dataset, column, splits, val_splits, limit}`: a `datasets:` entry's manifest
under results/data/<dataset>/, e.g. OpenI impressions; the paper used LAION prompts, not available offline).
Validation: the manifest's val prompts plus the source's `val_splits` rows, minus every text that is also in the
training corpus (held-out texts only; overlap counted in the summary). The summary's MSE curve (train per step,
val every `validate_every`) comes with two references on the val texts: the head at its seeded initial weights
(`val_mse_initial`) and a text-blind predictor, the training corpus's mean target for every text
(`val_mse_constant`): a head that does not beat it carries no information about the text.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MedsynthError
from . import training_cache_dir
from ..models.text_encoders import ConditioningTextEncoder, encode

LEVELS = ("document", "token")
CORPUS_KEYS = ("dataset", "column", "splits", "val_splits", "limit")


def level_of(text_encoder: ConditioningTextEncoder) -> str:
    return "token" if text_encoder.config.extraction == "tokens" else "document"


def target_of(context: torch.Tensor, level: str) -> torch.Tensor:
    """The distillation target: the full context (token level) or its mean over all positions (document level)."""
    return context.mean(1, keepdim=True) if level == "document" else context


@dataclass
class DistillResult:
    train: object                       # loop.TrainResult (per-step train MSE, val MSE curve, best, resume info)
    level: str
    context_length: int
    n_train: int
    n_val: int
    val_mse_initial: float | None       # P at its initial weights (seeded), before any step
    val_mse_constant: float | None      # the train corpus's mean target for every val text (text-blind reference)


class _Texts:
    """The frozen side of the loss for a list of texts: E's pre-projection states and B's contexts. With a
    cache_dir both are computed once and kept on disk (safetensors, keyed by the frozen encoder, its tokenizer
    length and the texts, so the document- and token-level runs share B's); without, per batch."""

    def __init__(self, texts, encoder, enc_tok, base, base_tok, level, cache_dir=None, batch_size: int = 32):
        self.texts, self.encoder, self.enc_tok, self.base, self.base_tok = list(texts), encoder, enc_tok, base, base_tok
        self.level, self.length, self.batch_size = level, int(base_tok.model_max_length), batch_size
        self.enc_states = self.contexts = self.targets = None
        if cache_dir is not None and self.texts:
            self.contexts = self._cached(cache_dir, "distill-base", self._base_id(), self._contexts)
            self.enc_states = self._cached(cache_dir, "distill-enc", self._encoder_id(), self._states)
            self.targets = target_of(self.contexts, level)

    def __len__(self):
        return len(self.texts)

    @property
    def device(self):
        return self.encoder.device

    def _base_id(self) -> str:
        from .caching import module_fingerprint
        return module_fingerprint(self.base, extra=json.dumps([self.length, len(self.base_tok),
                                                               type(self.base_tok).__name__]))

    def _encoder_id(self) -> str:
        from .caching import module_fingerprint
        c = self.encoder.config
        return module_fingerprint(self.encoder.encoder, extra=json.dumps(
            [c.extraction, c.use_attention_mask, c.st_pooling, c.st_normalize, self.length, len(self.enc_tok),
             type(self.enc_tok).__name__, self.level]))

    def _cached(self, cache_dir, prefix: str, module_id: str, compute) -> torch.Tensor:
        from safetensors.torch import load_file, save_file

        from ..io import atomic_path

        data_id = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()
        key = hashlib.sha256((module_id + data_id).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{prefix}-{key}.safetensors"
        if path.is_file():
            return load_file(str(path))["states"]
        states = torch.cat([compute(self.texts[i:i + self.batch_size])
                            for i in range(0, len(self.texts), self.batch_size)])
        with atomic_path(path) as tmp:
            save_file({"states": states.contiguous()}, str(tmp))
        return states

    @torch.no_grad()
    def _contexts(self, texts) -> torch.Tensor:
        """B's (n, L, D) context exactly as StableDiffusionPipeline encodes a prompt (mask rule, B's projection)."""
        ctx = encode(self.base, self.base_tok, texts, self.device).float()
        return (ctx.expand(-1, self.length, -1) if ctx.shape[1] == 1 else ctx).cpu().contiguous()

    @torch.no_grad()
    def _states(self, texts) -> torch.Tensor:
        """E's pre-projection states: (n, 1, H) pooled (document level) or (n, L, H) per token."""
        states = encode(self.encoder, self.enc_tok, texts, self.device, project=False).float()
        return (states[:, :1] if self.level == "document" else states).cpu().contiguous()

    def batch(self, idx, module=None, full_context: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(P(E(x)) before broadcasting, target) for texts[idx]; `full_context`: the broadcast output against
        B's full context (what the U-Net gets) instead of the training target."""
        idx = list(idx)
        if self.enc_states is not None:
            states = self.enc_states[idx].to(self.device)
            context = self.contexts[idx].to(self.device)
        else:
            texts = [self.texts[i] for i in idx]
            states, context = self._states(texts).to(self.device), self._contexts(texts).to(self.device)
        out = (module or self.encoder)(None, encoder_states=states)[0].float()
        if full_context:
            return (out.expand(-1, self.length, -1) if out.shape[1] == 1 else out), context
        target = self.targets[idx].to(self.device) if self.targets is not None else target_of(context, self.level)
        return out, target

    @torch.no_grad()
    def targets_in_batches(self):
        for start in range(0, len(self), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(self))))
            yield (self.targets[idx] if self.targets is not None
                   else target_of(self._contexts([self.texts[i] for i in idx]), self.level))

    @torch.no_grad()
    def mean_target(self) -> torch.Tensor:
        total = sum(t.double().sum(0) for t in self.targets_in_batches())
        return (total / len(self)).float()

    @torch.no_grad()
    def mse_to(self, constant: torch.Tensor) -> float:
        total = sum(float(((t - constant) ** 2).sum()) for t in self.targets_in_batches())
        return total / (len(self) * constant.numel())

    @torch.no_grad()
    def mse(self, module=None, full_context: bool = False) -> float:
        total, count = 0.0, 0
        for start in range(0, len(self), self.batch_size):
            out, target = self.batch(range(start, min(start + self.batch_size, len(self))), module, full_context)
            total += float(F.mse_loss(out, target, reduction="sum")); count += target.numel()
        return total / max(count, 1)


def distill_projection(encoder: ConditioningTextEncoder, enc_tok, base: ConditioningTextEncoder, base_tok,
                       train_texts, val_texts, cfg, out_dir: str | Path,
                       cache_dir: str | Path | None = None) -> DistillResult:
    """Train only `encoder.projection` so that the encoder's output matches `base`'s context (see module doc).

    `enc_tok` is set to pad to the base tokenizer's length L. Resumable like every stage (loop.run_training:
    checkpoints of the projection head, optimizer, RNG and data position under out_dir)."""
    from .loop import batch_indices, make_accelerator, run_training

    if not isinstance(encoder, ConditioningTextEncoder) or encoder.projection is None:
        raise MedsynthError("strategy 'projection_distill' needs the in-domain text encoder entry to have a projection "
                            "head (text_encoder.projection: {kind: mlp, out_dim: <the base U-Net's cross-attention "
                            "width>}); only that head is trained")
    length = int(base_tok.model_max_length)
    limit = getattr(encoder.encoder.config, "max_position_embeddings", length)
    if limit < length:
        raise MedsynthError(f"the in-domain text encoder has {limit} positions but the base model's context is "
                            f"{length} tokens long; its tokenizer must pad to the same length")
    enc_tok.model_max_length = length
    train_texts = list(dict.fromkeys(["", *train_texts]))
    level = level_of(encoder)
    encoder.requires_grad_(False)
    encoder.projection.requires_grad_(True)  # as strategies.make_strategy("projection_distill", ...)
    base.requires_grad_(False)
    accelerator = make_accelerator(cfg)
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    encoder.to(device, torch.float32).eval()  # frozen body: no dropout; the head has none
    base.to(device, torch.float32).eval()
    cache = Path(cache_dir or Path(out_dir) / "cache") if cfg.cache_text else None
    with accelerator.main_process_first():  # multi-GPU: the main process writes the caches, the others load them
        train = _Texts(train_texts, encoder, enc_tok, base, base_tok, level, cache)
        val = _Texts(val_texts, encoder, enc_tok, base, base_tok, level, cache) if val_texts else None
    val_initial = val.mse() if val is not None else None
    # A text-blind reference: the training corpus's mean target predicted for every held-out text.
    val_constant = val.mse_to(train.mean_target()) if val is not None else None

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(train), cfg.batch_size, micro, cfg.seed, rank, world)
        out, target = train.batch(idx, models["text_encoder"])
        return F.mse_loss(out, target), {}

    def val_fn(models):
        return val.mse(models["text_encoder"])

    result = run_training(out_dir, cfg, {"text_encoder": encoder}, {"text_encoder": encoder},
                          list(encoder.projection.parameters()), loss_fn, val_fn if val is not None else None,
                          accelerator=accelerator)
    return DistillResult(train=result, level=level, context_length=length, n_train=len(train),
                         n_val=len(val) if val is not None else 0, val_mse_initial=val_initial,
                         val_mse_constant=val_constant)


def _clean(values) -> list[str]:
    return [t for t in (str(v).strip() for v in values if v is not None and v == v) if t]


def corpus_texts(df, results: Path, corpus: dict | None, seed: int) -> tuple[list[str], list[str], dict]:
    """(train texts, held-out val texts, description) of the distillation corpus (see module doc)."""
    import pandas as pd

    train = _clean(df.loc[df["split"] == "train", "prompt"])
    val = _clean(df.loc[df["split"] == "val", "prompt"])
    info = {"manifest_train_texts": len(set(train)), "manifest_val_texts": len(set(val)), "source": None}
    if corpus:
        unknown = sorted(set(corpus) - set(CORPUS_KEYS))
        if unknown or "dataset" not in corpus:
            raise MedsynthError(f"distill_corpus needs `dataset` and takes only {', '.join(CORPUS_KEYS)} "
                                f"(got {sorted(corpus)})")
        path = Path(results) / "data" / corpus["dataset"] / "manifest.parquet"
        if not path.is_file():
            raise MedsynthError(f"distill_corpus dataset '{corpus['dataset']}': no manifest at {path} (build the "
                                "dataset first; the train rule must list it as an input)")
        column = corpus.get("column", "prompt")
        src = pd.read_parquet(path)
        missing = [c for c in (column, "split") if c not in src.columns]
        if missing:
            raise MedsynthError(f"distill_corpus: {path} has no column(s) {missing}")
        limit = corpus.get("limit")
        picked = {}
        for part, splits in (("train", corpus.get("splits", ["train"])), ("val", corpus.get("val_splits", ["val"]))):
            texts = list(dict.fromkeys(_clean(src.loc[src["split"].isin(list(splits)), column])))
            if limit and len(texts) > limit:  # a seeded draw, kept in corpus order
                keep = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed))[:limit]
                texts = [texts[i] for i in sorted(keep.tolist())]
            picked[part] = texts
        train += picked["train"]
        val += picked["val"]
        info["source"] = {"dataset": corpus["dataset"], "column": column, "train_texts": len(picked["train"]),
                          "val_texts": len(picked["val"]), "limit": limit}
    train = list(dict.fromkeys(train))
    seen = set(train)
    held_out = [t for t in dict.fromkeys(val) if t not in seen]
    info["val_texts_also_in_train"] = len(set(val)) - len(held_out)
    return train, held_out, info


def train_projection_distill_stage(df, results: Path, model_cfg: dict, work_dir: Path, out_dir: Path,
                                   seed: int) -> dict:
    """The diffusion stage of a `pretrained:` entry whose strategy is `projection_distill`; returns the summary."""
    from ..models.loading import load_stable_diffusion, load_text_encoder
    from ..pipeline_io import save_pipeline, weight_store
    from .caching import module_fingerprint
    from .stage_setup import (count_parameters, is_main, is_pretrained, prepare_work_dir, resolve_pretrained,
                              restore_best, train_config)

    pre = model_cfg.get("pretrained") or {}
    base_entry = pre.get("from_model") or pre.get("model")  # the workflow's model entry it starts from, if any
    if pre and not pre.get("name"):  # `pretrained: {model: <entry>}` -> that entry's pipeline folder
        model_cfg = resolve_pretrained(model_cfg, results)
    if not is_pretrained(model_cfg):
        raise MedsynthError("strategy 'projection_distill' maps an in-domain text encoder into a pretrained model's "
                            "text-encoder space: the model entry needs `pretrained:` (a Stable Diffusion checkpoint "
                            "or a trained pipeline folder)")
    if not model_cfg["pretrained"].get("name"):
        raise MedsynthError(f"strategy 'projection_distill': `pretrained` names no checkpoint "
                            f"({model_cfg['pretrained']}); it needs `name: <hub id or pipeline folder>`")
    if not model_cfg.get("text_encoder"):
        raise MedsynthError("strategy 'projection_distill' needs a `text_encoder:` entry (the in-domain encoder "
                            "with a projection head) that replaces the pretrained model's own")
    cfg = train_config(model_cfg["diffusion"]["train"], seed)
    torch.manual_seed(seed)
    comp = load_stable_diffusion(model_cfg["pretrained"])  # the base, with its own text encoder B
    encoder, enc_tok = load_text_encoder(dict(model_cfg["text_encoder"]))  # E (+ P), seeded (random_init, P)
    if encoder.projection is None:
        raise MedsynthError(f"strategy 'projection_distill': text encoder '{model_cfg['text_encoder']['name']}' has "
                            "no projection head; add projection: {kind: mlp, out_dim: "
                            f"{comp['unet'].config.cross_attention_dim}}}")
    cross = comp["unet"].config.cross_attention_dim
    if encoder.output_dim != cross:
        raise MedsynthError(f"the projection head gives {encoder.output_dim}-d states but the U-Net of "
                            f"'{model_cfg['pretrained']['name']}' attends to {cross}-d ones: set out_dim: {cross}")
    base, base_tok = comp["text_encoder"], comp["tokenizer"]
    train_texts, val_texts, corpus_info = corpus_texts(df, results, cfg.distill_corpus, seed)
    corpus_id = hashlib.sha256(json.dumps([train_texts, val_texts]).encode()).hexdigest()
    prepare_work_dir(work_dir, {"stage": "projection_distill", "model": model_cfg, "seed": seed,
                                "base": module_fingerprint(base), "corpus": corpus_id})
    res = distill_projection(encoder, enc_tok, base, base_tok, train_texts, val_texts, cfg, work_dir,
                             cache_dir=training_cache_dir(results))
    restored = restore_best(Path(work_dir), {"text_encoder": encoder})
    encoder.to("cpu", torch.float32).eval()
    base.to("cpu")
    context_mse = None
    if val_texts:  # the final (restored) weights against B's full context: what the U-Net will get
        cache = training_cache_dir(results) if cfg.cache_text else None
        context_mse = _Texts(val_texts, encoder, enc_tok, base, base_tok, res.level, cache).mse(full_context=True)
    vae, unet = comp["vae"], comp["unet"]
    tr = res.train
    base_name = base_entry or model_cfg["pretrained"]["name"]
    card = {"title": f"medsynth latent diffusion model ({base_name} with a distilled {res.level}-level textual "
                     "projection)",
            "description": f"VAE, U-Net and scheduler of {base_name}; its text encoder is "
                           f"replaced by {model_cfg['text_encoder']['name']} + a projection head trained with an MSE "
                           f"into the original text encoder's space (chambon2022 textual projection).",
            "training": {"strategy": "projection_distill", "level": res.level, "steps": tr.step,
                         "best_val_mse": tr.best_val, "corpus_texts": res.n_train, "val_texts": res.n_val,
                         "seed": seed}}
    if is_main():
        save_pipeline(out_dir, vae, unet, encoder, enc_tok, comp["scheduler"], card=card,
                      store=weight_store(results))
    size = int(model_cfg.get("image_size") or unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1))
    return {"stage": "diffusion", "strategy": "projection_distill", "level": res.level,
            "target": ("mean over all context positions of the base encoder's context" if res.level == "document"
                       else "the base encoder's context, position-wise over all positions"),
            "context_length": res.context_length, "steps": tr.step, "resumed_from": tr.resumed_from,
            "train_loss": tr.losses, "val_loss": tr.val_losses, "val_mse_initial": res.val_mse_initial,
            "val_mse_constant": res.val_mse_constant,
            "best_val": tr.best_val, "val_context_mse": context_mse, "stopped_early": tr.stopped_early,
            "restored_best": restored, "null_prompt_fraction": 0.0,
            "corpus": {"n_train": res.n_train, "n_val": res.n_val, "includes_null_prompt": True, **corpus_info},
            "n_train": res.n_train, "n_val": res.n_val, "image_size": size,
            "pretrained": model_cfg["pretrained"]["name"], "base_model": base_entry,
            "text_encoder": model_cfg["text_encoder"]["name"],
            "parameters": {"vae": count_parameters(vae), "unet": count_parameters(unet),
                           "text_encoder": count_parameters(encoder),
                           "text_projection": count_parameters(encoder.projection),
                           "base_text_encoder": count_parameters(base),
                           "trainable_diffusion_stage": count_parameters(encoder.projection)}}
