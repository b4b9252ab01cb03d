"""pytorch-fid's InceptionV3 (the TF "FID Inception"), loaded from a local file and never downloaded.

Two backbones exist, and every result names the one it used plus the sha256 of its weights file:
- ``inception-fid``: the real FID weights, the file pytorch-fid downloads
  (``pt_inception-2015-12-05-6726825d.pth`` in the torch hub cache) or a configured path.
- ``inception-random``: the same architecture with seeded random weights. It is an explicit, labelled alternative for
  offline runs and tests; its numbers are NOT comparable with published FIDs.

The network is pytorch-fid's own modules (``fid_inception_v3`` structure) so features are identical to
``python -m pytorch_fid`` given the same weights. We also keep the 1008-way ``fc`` that pytorch-fid drops, for IS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MedsynthError
from ..io import sha256_file  # noqa: F401 (this module's API)

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
BACKBONES = ("inception-fid", "inception-random")
# pytorch-fid: F.interpolate(size=(299, 299), mode="bilinear", align_corners=False) inside the model, then 2x-1.
RESIZE_MODE = "bilinear-299-in-model"
DIMS_TO_BLOCK = {64: 0, 192: 1, 768: 2, 2048: 3}


def default_fid_weights_path() -> Path:
    """Where pytorch-fid's download lands: $TORCH_HOME/hub/checkpoints (torch.hub's cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def default_cache_dir() -> Path:
    return Path(os.environ.get("MEDSYNTH_CACHE", Path.home() / ".cache" / "medsynth"))


def build_fid_inception() -> nn.Module:
    """pytorch-fid's fid_inception_v3() architecture without its load_state_dict_from_url call."""
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights for the random backbone.

    He-normal convolutions keep activations at a usable scale through ~90 ReLU layers (PyTorch's default init
    shrinks them towards zero, which would make every distance trivially ~0). BatchNorm keeps identity statistics.
    """
    gen = torch.Generator().manual_seed(seed)
    net = build_fid_inception()
    state = {}
    for name, tensor in net.state_dict().items():
        if name.endswith(".conv.weight"):
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif name == "fc.weight":
            value = torch.randn(tensor.shape, generator=gen) * (1.0 / tensor.shape[1]) ** 0.5
        elif name == "fc.bias":
            value = torch.zeros_like(tensor)  # the module's default bias comes from the global RNG
        else:
            value = tensor.clone()  # BatchNorm affine and running statistics: fixed defaults (identity)
        state[name] = value.contiguous()
    return state


def random_weights_path(seed: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """The random backbone's safetensors file; written once, then the same bytes every time."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    path = Path(cache_dir or default_cache_dir()) / f"inception-random-seed{seed}.safetensors"
    if not path.exists():
        with atomic_path(path) as tmp:
            save_file(random_state_dict(seed), str(tmp),
                      # one key only: safetensors writes metadata in hash-map order, which would vary the bytes
                      metadata={"medsynth": f"inception-random seed={seed}"})
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    # A user-supplied .pth is untrusted: plain tensors only (safe_load), a bad file is one line naming it.
    from ..safe_load import load_tensor_file

    return load_tensor_file(path, "Inception")


@dataclass(frozen=True)
class BackboneInfo:
    backbone: str
    weights_path: str
    weights_sha256: str
    resize_mode: str = RESIZE_MODE


def resolve_weights(backbone: str = "inception-fid", weights: str | os.PathLike | None = None, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    if backbone == "inception-fid":
        path = Path(weights) if weights else default_fid_weights_path()
        if not path.is_file():
            raise MedsynthError(
                f"FID Inception weights not found: {path}. Download {FID_WEIGHTS_URL} on a connected machine and copy "
                f"it to {default_fid_weights_path()} (or set the metrics weights path in the config); offline, pass "
                f"backbone='inception-random' explicitly (numbers are then labelled and not comparable to papers)")
        return path
    if backbone == "inception-random":
        if weights:
            raise MedsynthError("backbone 'inception-random' makes its own weights; do not pass a weights path")
        return random_weights_path(seed, cache_dir)
    raise MedsynthError(f"unknown metrics backbone '{backbone}'; choose one of {', '.join(BACKBONES)}")


class FIDInception(nn.Module):
    """Returns pool features of the requested block (as pytorch-fid's InceptionV3) and, for dims=2048, the
    1008-way bias-free logits used for IS (pool3 @ fc.weight.T, as the original TF IS code and torch-fidelity)."""

    def __init__(self, state_dict: dict[str, torch.Tensor], dims: int = 2048):
        super().__init__()
        if dims not in DIMS_TO_BLOCK:
            raise MedsynthError(f"Inception feature dims must be one of {sorted(DIMS_TO_BLOCK)}, got {dims}")
        net = build_fid_inception()
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as err:
            raise MedsynthError(f"weights file does not fit pytorch-fid's InceptionV3: {str(err)[:200]}") from err
        self.dims = dims
        pool = nn.MaxPool2d(kernel_size=3, stride=2)
        # Same block split as pytorch_fid.inception.InceptionV3.
        self.blocks = nn.ModuleList([
            nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, pool),
            nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, pool),
            nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
                          net.Mixed_6d, net.Mixed_6e),
            nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d((1, 1))),
        ][: DIMS_TO_BLOCK[dims] + 1])
        self.fc = net.fc
        self.eval()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: N x 3 x H x W in [0, 1]. Returns (N x dims features, N x 1008 logits or None)."""
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for block in self.blocks:
            x = block(x)
        if x.shape[2:] != (1, 1):  # pytorch-fid pools lower blocks to 1x1 in get_activations
            x = F.adaptive_avg_pool2d(x, output_size=(1, 1))
        feats = x.flatten(1)
        logits = feats @ self.fc.weight.T if self.dims == 2048 else None
        return feats, logits


def load_backbone(backbone: str = "inception-fid", weights: str | os.PathLike | None = None, dims: int = 2048,
                  seed: int = 0, cache_dir: str | os.PathLike | None = None,
                  device: str = "cpu") -> tuple[FIDInception, BackboneInfo]:
    path = resolve_weights(backbone, weights, seed, cache_dir)
    model = FIDInception(load_state_dict(path), dims=dims).to(device)
    return model, BackboneInfo(backbone=backbone, weights_path=str(path), weights_sha256=sha256_file(path))
