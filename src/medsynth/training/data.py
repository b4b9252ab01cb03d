"""Image sources for training: indexable, fingerprinted (so caches know when the data changed)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import MedsynthError


class TensorImages:
    """Images already in memory, (N, C, H, W) in [-1, 1]."""

    def __init__(self, images: torch.Tensor):
        if images.ndim != 4:
            raise MedsynthError(f"training images must be (N, C, H, W), got shape {tuple(images.shape)}")
        self.images = images.float()

    def __len__(self) -> int:
        return len(self.images)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images[list(indices)]

    def fingerprint(self) -> str:
        return hashlib.sha256(self.images.contiguous().numpy().tobytes()).hexdigest()


class FileImages:
    """Image files read lazily, batch by batch, as `channels` channels in [-1, 1] (so a dataset never has to fit in
    memory; with cached latents each file is read once). Files of another size are an error, or with
    `resize=True` bicubic-resized to `size` (a pretrained model trained at another resolution)."""

    def __init__(self, paths: Sequence[str | os.PathLike], size: int, channels: int = 1, resize: bool = False):
        self.paths = [Path(p) for p in paths]
        self.size, self.channels, self.resize = size, channels, resize
        if not self.paths:
            raise MedsynthError("no training images were given")
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise MedsynthError(f"{len(missing)} training image(s) are missing, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: Path) -> torch.Tensor:
        img = Image.open(path).convert("L" if self.channels == 1 else "RGB")
        if img.size != (self.size, self.size) and self.resize:
            img = img.resize((self.size, self.size), Image.BICUBIC)
        elif img.size != (self.size, self.size):
            raise MedsynthError(f"{path.name} is {img.size}, expected {self.size}x{self.size}: preprocess first")
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0  # [-1, 1] as the diffusion models expect
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([self._read(self.paths[i]) for i in indices])

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.size}/{self.channels}/{self.resize}".encode())
        for p in self.paths:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

