"""A 3D feature backbone for patch-wise volume distances: MedicalNet's ResNet-10 (Chen et al. 2019, "Med3D").

MedicalNet is the 3D network commonly used for volumetric FIDs (e.g. MONAI Generative's 3D FID). Its layout is
reproduced here module for module (``conv1`` 7x7x7 stride 2, max-pool, four BasicBlock stages, the last two dilated
2 and 4 instead of strided; shortcut type A = parameter-free avg-pool + zero channels, B = 1x1x1 conv + BN), so that
the state dict of a MedicalNet ``resnet_10*.pth`` (keys under ``module.``; its ``conv_seg`` head is dropped) loads
by name. Features: global average of ``layer4`` = 512-d.

Two backbones, every result names the one it used and the sha256 of its weights file:
- ``med3d-resnet10``: real MedicalNet weights from a configured local file (``metrics.volume.med3d_weights``),
  never downloaded. Inputs are z-scored per volume, as MedicalNet was trained. (Not exercised offline: the weights
  are not on this machine; the loader is tested on a state dict of the same layout.)
- ``med3d-random``: the same architecture with seeded He-normal weights, a labelled STAND-IN (numbers only compare
  runs of this code with each other). Inputs are mapped 2x-1 from the [0, 1] HU window, so a global intensity change
  moves the features (a per-volume z-score would hide it).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MedsynthError
from .inception import BackboneInfo, default_cache_dir, sha256_file

MED3D_BACKBONES = ("med3d-resnet10", "med3d-random")
MED3D_DIMS = 512
INPUT_MODES = {"med3d-resnet10": "zscore-per-volume", "med3d-random": "2x-1 of the [0, 1] HU window"}


def _conv3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock3d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, shortcut: str = "B"):
        super().__init__()
        self.conv1 = _conv3(cin, cout, stride, dilation)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = _conv3(cout, cout, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(cout)
        self.stride, self.cout = stride, cout
        self.shortcut = shortcut if (stride != 1 or cin != cout) else None
        if self.shortcut == "B":
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut == "B":
            x = self.downsample(x)
        elif self.shortcut == "A":  # MedicalNet's downsample_basic_block: strided identity, zero-padded channels
            x = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
            x = torch.cat([x, x.new_zeros(x.shape[0], self.cout - x.shape[1], *x.shape[2:])], dim=1)
        return F.relu(out + x)


class Med3DResNet10(nn.Module):
    """MedicalNet ResNet-10 trunk (layers [1, 1, 1, 1]) returning N x 512 pooled features."""

    def __init__(self, shortcut: str = "B"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise MedsynthError(f"MedicalNet shortcut type must be A or B, got {shortcut!r}")
        self.conv1 = nn.Conv3d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock3d(64, 64, shortcut=shortcut))
        self.layer2 = nn.Sequential(BasicBlock3d(64, 128, stride=2, shortcut=shortcut))
        self.layer3 = nn.Sequential(BasicBlock3d(128, 256, dilation=2, shortcut=shortcut))
        self.layer4 = nn.Sequential(BasicBlock3d(256, 512, dilation=4, shortcut=shortcut))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))


class Med3DFeatures(nn.Module):
    """Metrics-backbone interface: N x 1 x D x H x W patches -> (N x 512 features, None). Patches arrive in [0, 1]
    (stand-in: mapped 2x-1 here) or already z-scored per volume (MedicalNet weights: ``normalise_volume``)."""

    def __init__(self, net: Med3DResNet10, input_mode: str):
        super().__init__()
        self.net = net.eval()
        self.input_mode = input_mode

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if x.ndim != 5 or x.shape[1] != 1:
            raise MedsynthError(f"3D patches must be N x 1 x D x H x W, got {tuple(x.shape)}")
        x = x.float()
        return self.net(x if self.input_mode == "zscore-per-volume" else 2 * x - 1), None


def normalise_volume(volume, backbone: str):
    """The whole-volume input normalisation a backbone expects (MedicalNet: z-score per volume), applied before
    patching so every patch of one volume shares it. The stand-in keeps the [0, 1] window (mapped 2x-1 in-model)."""
    import numpy as np

    if INPUT_MODES.get(backbone) != "zscore-per-volume":
        return volume
    v = np.asarray(volume, dtype=np.float32)
    std = float(v.std())
    return (v - float(v.mean())) / (std if std > 0 else 1.0)


def random_state_dict(seed: int, shortcut: str = "B") -> dict[str, torch.Tensor]:
    """Seeded He-normal convolutions, identity BatchNorm: activations keep their scale through the trunk."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in Med3DResNet10(shortcut).state_dict().items():
        if tensor.ndim == 5:
            fan_in = tensor[0].numel()
            state[name] = (torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5).contiguous()
        else:
            state[name] = tensor.clone().contiguous()
    return state


def random_weights_path(seed: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """The stand-in's safetensors file: written once, then the same bytes every time (hash recorded in results)."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    path = Path(cache_dir or default_cache_dir()) / f"med3d-random-seed{seed}.safetensors"
    if not path.exists():
        with atomic_path(path) as tmp:
            save_file(random_state_dict(seed), str(tmp), metadata={"medsynth": f"med3d-random seed={seed}"})
    return path


def read_medicalnet_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A MedicalNet checkpoint (``.pth``: {'state_dict': {'module.conv1.weight': ...}} or a plain dict, loaded with
    weights_only) or a ``.safetensors`` file -> trunk state dict (``module.`` stripped, ``conv_seg`` head dropped)."""
    path = Path(path)
    from ..safe_load import load_tensor_file

    state = load_tensor_file(path, "MedicalNet")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MedsynthError(f"{path}: expected a state dict, got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if not key.startswith("conv_seg"):
            out[key] = value
    return out


def load_med3d(backbone: str, weights: str | os.PathLike | None = None, seed: int = 0,
               cache_dir: str | os.PathLike | None = None, device: str = "cpu") -> tuple[nn.Module, BackboneInfo]:
    if backbone == "med3d-random":
        if weights:
            raise MedsynthError("backbone 'med3d-random' makes its own weights; do not pass a weights path")
        path = random_weights_path(seed, cache_dir)
    elif backbone == "med3d-resnet10":
        if not weights or not Path(weights).is_file():
            raise MedsynthError(f"backbone 'med3d-resnet10' needs MedicalNet's resnet_10 weights as a local file "
                                f"(config key metrics.volume.med3d_weights; got {weights!r}); they are never "
                                "downloaded. Offline, name backbone 'med3d-random' (labelled stand-in) instead")
        path = Path(weights)
    else:
        raise MedsynthError(f"unknown 3D backbone '{backbone}'; choose one of {', '.join(MED3D_BACKBONES)}")
    state = read_medicalnet_state(path)
    shortcut = "B" if any(".downsample." in k for k in state) else "A"
    net = Med3DResNet10(shortcut)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise MedsynthError(f"{path} does not fit MedicalNet's ResNet-10 (shortcut {shortcut}): "
                            f"{str(err)[:240]}") from err
    model = Med3DFeatures(net, INPUT_MODES[backbone]).to(device)
    return model, BackboneInfo(backbone, str(path), sha256_file(path), f"native-patch, input {INPUT_MODES[backbone]}")
