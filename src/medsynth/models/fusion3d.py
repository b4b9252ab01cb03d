"""3D networks of xing2024 (DGM-VLC), built on MONAI's `DiffusionModelUNet` (spatial_dims=3).

- `DFBlock`: DF-GAN's affine text fusion, gamma(text) * h + beta(text) per channel, a 3D conv, and a second affine
  unit (the paper's diffusion backbone puts three of them in the U-Net bottleneck).
- `AffineTextUNet3D`: MONAI's U-Net whose bottleneck output passes through `n_dfblocks` DFBlocks conditioned on one
  pooled text vector per volume (the "Cond DDPM + Text Encoder" row); with text_dim 0 it is the plain U-Net.
- `build_generator`: the pix2pix generator, MONAI's U-Net run at a fixed timestep 0 (mask -> volume), with MONAI's
  cross-attention to the text context where `text_dim` > 0 (a pooled vector is a context of length 1: the paper's
  variant; token-level states give attention keys to choose between).
"""
from __future__ import annotations

import torch
from torch import nn


class Affine(nn.Module):
    """gamma(text) * h + beta(text), per channel; starts as the identity (gamma 1, beta 0) as in DF-GAN."""

    def __init__(self, channels: int, text_dim: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(text_dim, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(text_dim, channels), nn.SiLU(), nn.Linear(channels, channels))
        for head, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.zeros_(head[-1].weight)
            nn.init.constant_(head[-1].bias, bias)

    def forward(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        shape = (h.shape[0], h.shape[1]) + (1,) * (h.ndim - 2)
        return self.gamma(text).view(shape) * h + self.beta(text).view(shape)


class DFBlock(nn.Module):
    """affine -> SiLU -> 3D conv -> affine -> SiLU, with a residual connection (DF-GAN's fusion block in 3D)."""

    def __init__(self, channels: int, text_dim: int):
        super().__init__()
        self.affine1, self.affine2 = Affine(channels, text_dim), Affine(channels, text_dim)
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        out = self.act(self.affine1(h, text))
        out = self.act(self.affine2(self.conv(out), text))
        return h + out


def monai_unet(in_channels: int, out_channels: int, channels, num_res_blocks: int = 1, attention=None,
               text_dim: int = 0, num_head_channels: int = 8, norm_num_groups: int = 4):
    from monai.networks.nets import DiffusionModelUNet

    channels = tuple(int(c) for c in channels)
    attention = tuple(bool(a) for a in (attention or [False] * len(channels)))
    return DiffusionModelUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                              channels=channels, attention_levels=attention, num_res_blocks=int(num_res_blocks),
                              num_head_channels=int(num_head_channels), norm_num_groups=int(norm_num_groups),
                              with_conditioning=text_dim > 0, cross_attention_dim=text_dim or None,
                              include_fc=False)


class AffineTextUNet3D(nn.Module):
    """MONAI DiffusionModelUNet with DFBlock text fusion after its middle block (MONAI's forward, steps 1-7, with the
    fusion inserted; ControlNet residuals are not used here)."""

    def __init__(self, in_channels: int, out_channels: int, channels, num_res_blocks: int = 1, attention=None,
                 text_dim: int = 0, n_dfblocks: int = 3, num_head_channels: int = 8, norm_num_groups: int = 4):
        super().__init__()
        self.unet = monai_unet(in_channels, out_channels, channels, num_res_blocks, attention, 0,
                               num_head_channels, norm_num_groups)
        self.text_dim = int(text_dim)
        self.fusion = nn.ModuleList(DFBlock(int(channels[-1]), self.text_dim)
                                    for _ in range(n_dfblocks if self.text_dim else 0))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        from monai.networks.nets.diffusion_model_unet import get_timestep_embedding

        u = self.unet
        emb = u.time_embed(get_timestep_embedding(timesteps, u.block_out_channels[0]).to(dtype=x.dtype))
        h = u.conv_in(x)
        skips = [h]
        for block in u.down_blocks:
            h, res = block(hidden_states=h, temb=emb, context=None)
            skips.extend(res)
        h = u.middle_block(hidden_states=h, temb=emb, context=None)
        if self.fusion:
            if text is None:
                raise ValueError("this U-Net fuses text: pass one text vector per volume")
            for block in self.fusion:
                h = block(h, text.to(h.dtype))
        for block in u.up_blocks:
            idx = -len(block.resnets)
            res, skips = skips[idx:], skips[:idx]
            h = block(hidden_states=h, res_hidden_states_list=res, temb=emb, context=None)
        return u.out(h)


class Generator3D(nn.Module):
    """pix2pix generator: one-hot mask (+ text context through cross-attention) -> volume in [-1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, channels, num_res_blocks: int = 1, attention=None,
                 text_dim: int = 0, num_head_channels: int = 8, norm_num_groups: int = 4):
        super().__init__()
        if text_dim and not any(attention or []):
            attention = [False] * (len(channels) - 1) + [True]  # cross-attention at the coarsest level at least
        self.unet = monai_unet(in_channels, out_channels, channels, num_res_blocks, attention, text_dim,
                               num_head_channels, norm_num_groups)
        self.text_dim = int(text_dim)

    def forward(self, mask: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
        if self.text_dim and context is None:
            raise ValueError("this generator fuses text: pass its context (B, L, D)")
        ctx = None if not self.text_dim else (context[:, None] if context.ndim == 2 else context).to(mask.dtype)
        return torch.tanh(self.unet(mask, timesteps=t, context=ctx))


def patch_discriminator(in_channels: int, channels: int = 8, num_layers: int = 2):
    """MONAI's 3D PatchGAN (conditional: the volume concatenated with its mask); last output = patch logits."""
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=3, num_layers_d=int(num_layers), channels=int(channels),
                              in_channels=in_channels, out_channels=1, norm="INSTANCE")
