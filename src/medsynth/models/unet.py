"""From-scratch UNet2DConditionModel with configured widths, attention resolutions and cross-attention width."""
from __future__ import annotations

from diffusers import UNet2DConditionModel

from ..errors import MedsynthError


def build_unet(sample_size: int, in_channels: int, cross_attention_dim: int, block_out_channels=(48, 96, 192, 192),
               attention_resolutions=(8, 16, 32), layers_per_block: int = 2, attention_head_dim: int = 8,
               norm_num_groups: int = 16) -> UNet2DConditionModel:
    """Down block i works at resolution sample_size / 2**i; it gets cross-attention when that resolution is in
    `attention_resolutions` (choksi2025: 8x8/16x16/32x32 on 32x32 latents). The mid block always attends."""
    if any(c % norm_num_groups for c in block_out_channels):
        raise MedsynthError(f"U-Net block_out_channels {list(block_out_channels)} must be multiples of "
                            f"norm_num_groups={norm_num_groups}")
    res = [sample_size // 2 ** i for i in range(len(block_out_channels))]
    attn = [r in set(attention_resolutions) for r in res]
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        down_block_types=down, up_block_types=up, block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups)
