"""Which parameters each training strategy updates, and the per-step constraints it needs.

- scratch:           U-Net (+ projection head if any) trained; text encoder frozen (choksi2025).
- finetune_unet:     U-Net only (chambon2022 "U-Net fine-tuning").
- dreambooth:        U-Net only + class-prior preservation loss (chambon2022 "with prior").
- textual_inversion: only the embedding rows of new placeholder tokens (Gal et al.; chambon2022).
- projection:        only the projection head, by the diffusion loss.
- projection_distill: only the projection head, by an MSE into the pretrained model's own text-encoder space on a
                     text corpus (chambon2022 Study 3 "textual projection"; no images; see `distill`).
- joint:             U-Net + the whole text encoder, DreamBooth recipe (siddiqui2023: SD U-Net + RadBERT).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import MedsynthError

STRATEGIES = ("scratch", "finetune_unet", "dreambooth", "textual_inversion", "projection", "joint",
              "projection_distill")


@dataclass
class Strategy:
    name: str
    train_unet: bool
    train_text_encoder: bool
    train_projection: bool
    prior_preservation: bool
    token_ids: list[int] = field(default_factory=list)       # textual inversion: rows that may change
    frozen_rows: torch.Tensor | None = None                  # textual inversion: original embedding matrix

    @property
    def text_frozen(self) -> bool:
        """The encoder body is frozen, so its states can be cached (a projection head may still train)."""
        return not self.train_text_encoder and not self.token_ids


def make_strategy(name: str, unet, text_encoder, tokenizer=None, placeholder_tokens=(), initializer_token=None,
                  prior_preservation: bool | None = None) -> Strategy:
    if name not in STRATEGIES:
        raise MedsynthError(f"unknown training strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    has_proj = text_encoder.projection is not None
    if name in ("projection", "projection_distill") and not has_proj:
        raise MedsynthError(f"strategy '{name}' needs a text encoder with a projection head (text_encoder.projection)")
    strategy = Strategy(
        name=name, train_unet=name in ("scratch", "finetune_unet", "dreambooth", "joint"),
        train_text_encoder=name == "joint",
        train_projection=(name in ("projection", "projection_distill", "joint")) or (name == "scratch" and has_proj),
        prior_preservation=(name in ("dreambooth", "joint")) if prior_preservation is None else prior_preservation)
    unet.requires_grad_(strategy.train_unet)
    text_encoder.requires_grad_(False)
    if strategy.train_text_encoder:
        text_encoder.encoder.requires_grad_(True)
    if has_proj:
        text_encoder.projection.requires_grad_(strategy.train_projection)
    if name == "textual_inversion":
        _add_placeholder_tokens(strategy, text_encoder, tokenizer, placeholder_tokens, initializer_token)
    return strategy


def _add_placeholder_tokens(strategy: Strategy, text_encoder, tokenizer, tokens, initializer_token) -> None:
    """As diffusers' textual_inversion.py: add tokens, init their rows from the initializer token, train the
    embedding matrix but restore every other row after each step (so old rows stay bit-identical)."""
    if tokenizer is None or not tokens or not initializer_token:
        raise MedsynthError("textual_inversion needs a tokenizer, placeholder_tokens and an initializer_token")
    added = tokenizer.add_tokens(list(tokens))
    if added != len(tokens):
        raise MedsynthError(f"placeholder tokens {list(tokens)} already exist in the tokenizer; choose new ones")
    init_ids = tokenizer.encode(initializer_token, add_special_tokens=False)
    if len(init_ids) != 1:
        raise MedsynthError(f"initializer_token '{initializer_token}' must be a single token (got {len(init_ids)})")
    text_encoder.encoder.resize_token_embeddings(len(tokenizer))
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        for i in ids:
            weight[i] = weight[init_ids[0]].clone()
    weight.requires_grad_(True)
    strategy.token_ids = list(ids)
    strategy.frozen_rows = weight.detach().clone()


def after_optimizer_step(strategy: Strategy, text_encoder) -> None:
    if not strategy.token_ids:
        return
    weight = text_encoder.get_input_embeddings().weight
    keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    keep[strategy.token_ids] = False
    with torch.no_grad():
        weight[keep] = strategy.frozen_rows.to(weight)[keep]


def trainable_parameters(unet, text_encoder) -> list[torch.nn.Parameter]:
    return [p for m in (unet, text_encoder) for p in m.parameters() if p.requires_grad]


# Prompt templates of diffusers' textual_inversion.py (learnable_property "object" / "style").
OBJECT_TEMPLATES = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
    "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
)
STYLE_TEMPLATES = (
    "a painting in the style of {}", "a rendering in the style of {}", "a cropped painting in the style of {}",
    "the painting in the style of {}", "a clean painting in the style of {}", "a dirty painting in the style of {}",
    "a dark painting in the style of {}", "a picture in the style of {}", "a cool painting in the style of {}",
    "a close-up painting in the style of {}", "a bright painting in the style of {}",
    "a cropped painting in the style of {}", "a good painting in the style of {}",
    "a close-up painting in the style of {}", "a rendition in the style of {}", "a nice painting in the style of {}",
    "a small painting in the style of {}", "a weird painting in the style of {}", "a large painting in the style of {}",
)


def ti_templates(kind: str) -> tuple[str, ...]:
    if kind == "object":
        return OBJECT_TEMPLATES
    if kind == "style":
        return STYLE_TEMPLATES
    raise MedsynthError(f"unknown textual inversion templates '{kind}'; choose 'object' or 'style'")
