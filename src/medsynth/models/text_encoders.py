"""Text conditioning: any Hugging Face text encoder + an extraction method + an optional projection head.

`ConditioningTextEncoder` is a transformers `PreTrainedModel`, so a trained pipeline saves it with
`save_pretrained` and `StableDiffusionPipeline` calls it exactly like CLIP: `text_encoder(ids, attention_mask)[0]`
is the (B, L, D) cross-attention context. Pooled extractions ('cls', 'mean', 'pooler', 'model_specific') give one
vector per prompt — the document-level conditioning of chambon2022 — broadcast to (B, L, D); 'tokens' gives the
per-token sequence.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from ..errors import MedsynthError
from .projection import build_projection

EXTRACTIONS = ("cls", "mean", "pooler", "model_specific", "tokens")


class ConditioningTextEncoderConfig(PretrainedConfig):
    model_type = "medsynth_text_encoder"

    def __init__(self, encoder: dict | None = None, extraction: str = "tokens", projection: dict | None = None,
                 use_attention_mask: bool = True, st_pooling: str | None = None, st_normalize: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder or {}
        self.extraction = extraction
        self.projection = projection  # {"kind": "linear"|"mlp", "out_dim": int, "hidden_dim": int|None} or None
        # Padding must be masked for 'mean'; SD's pipeline passes the mask only when this flag is set.
        self.use_attention_mask = use_attention_mask
        self.st_pooling = st_pooling  # sentence-transformers pooling of the source model ('mean'/'cls'/'max')
        self.st_normalize = st_normalize


AutoConfig.register(ConditioningTextEncoderConfig.model_type, ConditioningTextEncoderConfig, exist_ok=True)


def _is_clip(config) -> bool:
    return getattr(config, "model_type", "") in ("clip_text_model", "clip")


class ConditioningTextEncoder(PreTrainedModel):
    config_class = ConditioningTextEncoderConfig
    base_model_prefix = "conditioning"
    main_input_name = "input_ids"

    def __init__(self, config: ConditioningTextEncoderConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        if config.extraction not in EXTRACTIONS:
            raise MedsynthError(f"unknown text extraction '{config.extraction}'; choose one of {', '.join(EXTRACTIONS)}")
        if encoder is None:
            inner = dict(config.encoder)
            inner_config = AutoConfig.for_model(inner.pop("model_type"), **inner)
            encoder = _model_from_config(inner_config)
        self.encoder = encoder
        self.projection = None
        if config.projection:
            p = config.projection
            self.projection = build_projection(p["kind"], self.hidden_size, p["out_dim"], p.get("hidden_dim"))
        self.post_init()

    @property
    def hidden_size(self) -> int:
        cfg = self.encoder.config
        return getattr(cfg, "hidden_size", None) or cfg.d_model

    @property
    def output_dim(self) -> int:
        return self.config.projection["out_dim"] if self.config.projection else self.hidden_size

    def _init_weights(self, module):
        # Deliberately empty: the wrapped encoder keeps its pretrained weights and the projection head keeps
        # PyTorch's default init (seeded by the caller), so wrapping never re-initialises anything.
        return

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None, project: bool = True,
                encoder_states: torch.Tensor | None = None, **_ignored):
        """`project=False` returns the states before the projection head (what a frozen-encoder cache stores);
        `encoder_states` (such cached states) skips the encoder and only applies the projection head."""
        if encoder_states is not None:
            return (self.projection(encoder_states) if project and self.projection is not None else encoder_states,)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = extract(out, attention_mask, self.config, self.encoder)
        if project and self.projection is not None:
            states = self.projection(states)
        if states.shape[1] != input_ids.shape[1]:
            # Document-level vector broadcast over the token axis: cross-attention over identical keys equals
            # attention to one key, and StableDiffusionPipeline pads the negative prompt to the context length,
            # so the null prompt is then tokenized exactly as in training.
            states = states.expand(-1, input_ids.shape[1], -1)
        return (states,)


def _model_from_config(config):
    if _is_clip(config):
        from transformers import CLIPTextModel
        return CLIPTextModel(config)
    return AutoModel.from_config(config)


def extract(out, attention_mask: torch.Tensor, config: ConditioningTextEncoderConfig, encoder: nn.Module) -> torch.Tensor:
    """Turn encoder outputs into the (B, L, D) context; pooled methods return L = 1."""
    hidden = out.last_hidden_state
    method = config.extraction
    if method == "tokens":
        return hidden
    if method == "cls":
        return hidden[:, :1]
    if method == "mean":
        return masked_mean(hidden, attention_mask)[:, None]
    if method == "pooler":
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            raise MedsynthError(f"text encoder {type(encoder).__name__} has no pooler output; use 'cls' or 'mean'")
        return pooled[:, None]
    # model_specific: the pooling the model was trained to be used with
    if _is_clip(encoder.config):
        return out.pooler_output[:, None]  # CLIP: final-layer-normed state at the EOS token
    if config.st_pooling:
        if config.st_pooling == "mean":
            pooled = masked_mean(hidden, attention_mask)
        elif config.st_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = hidden.masked_fill(attention_mask[..., None] == 0, float("-inf")).amax(1)
        if config.st_normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled[:, None]
    raise MedsynthError(f"no model-specific extraction is known for {type(encoder).__name__}; "
                        "use 'cls', 'mean', 'pooler' or 'tokens'")


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask[..., None].to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def tokenize(tokenizer, texts: list[str], device=None) -> dict[str, torch.Tensor]:
    """Pad to the tokenizer's max length exactly like StableDiffusionPipeline, so training matches sampling."""
    batch = tokenizer(list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                      return_tensors="pt")
    return {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}


def encode(text_encoder, tokenizer, texts: list[str], device=None,
           project: bool = True, module=None) -> torch.Tensor:
    """(B, L, D) cross-attention context, passing the mask only when the encoder uses one (as SD's pipeline does).
    `module`: what to call instead of text_encoder itself (its DDP wrapper in multi-GPU training)."""
    batch = tokenize(tokenizer, texts, device or text_encoder.device)
    # StableDiffusionPipeline's rule, so a plain transformers encoder (CLIP, a saved BERT) works here too.
    mask = batch["attention_mask"] if getattr(text_encoder.config, "use_attention_mask", False) else None
    if not isinstance(text_encoder, ConditioningTextEncoder):
        return (module or text_encoder)(batch["input_ids"], attention_mask=mask)[0]
    return (module or text_encoder)(batch["input_ids"], attention_mask=mask, project=project)[0]


@torch.no_grad()
def embed_documents(text_encoder: ConditioningTextEncoder, tokenizer, texts: list[str], batch_size: int = 32,
                    device=None) -> torch.Tensor:
    """(N, D) one vector per text (for retrieval studies such as CheXpert@k); needs a pooled extraction."""
    if text_encoder.config.extraction == "tokens":
        raise MedsynthError("document embeddings need a pooled extraction ('cls', 'mean', 'pooler', 'model_specific')")
    text_encoder.eval()
    chunks = [encode(text_encoder, tokenizer, texts[i:i + batch_size], device)[:, 0].float().cpu()
              for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, text_encoder.output_dim)
