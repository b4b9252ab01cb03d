"""Trainable heads that map a text encoder's states into the U-Net's cross-attention space.

- 'linear': one Linear layer (choksi2025: BioBERT 768 -> cross-attention dim, the only trainable text part).
- 'mlp': Linear -> LayerNorm -> ReLU -> Linear (chambon2022's textual projection into CLIP's space).
Both act on the last dimension, so the same head serves document-level (B, 1, D) and token-level (B, L, D) states.
"""
from __future__ import annotations

from torch import nn

from ..errors import MedsynthError

KINDS = ("linear", "mlp")


def build_projection(kind: str, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        hidden = hidden_dim or out_dim
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    raise MedsynthError(f"unknown projection kind '{kind}'; choose one of {', '.join(KINDS)}")
