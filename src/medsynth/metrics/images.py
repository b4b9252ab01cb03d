"""Images as the metrics read them: files -> H x W x 3 uint8 (pytorch-fid's PIL convert("RGB"), 16-bit PNGs scaled to
8 bits, optional PIL resize) -> N x 3 x H x W batches in [0, 1]. A leaf module: ``fid`` and ``generative`` both
build on it."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import MedsynthError, RejectedInput

# pytorch-fid's IMAGE_EXTENSIONS
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")
RESIZE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box")


def to_batch(images) -> torch.Tensor:
    """uint8 or [0, 1] float images -> N x 3 x H x W float32 tensor. Accepts a torch N x C x H x W tensor (C = 1/3)
    or numpy H x W, H x W x C, N x H x W, N x H x W x C."""
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise MedsynthError(f"image tensor must be N x (1|3) x H x W, got {tuple(x.shape)}")
    else:
        arr = np.asarray(images)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3):
            arr = arr[..., None]  # N x H x W grayscale
        elif arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
            raise MedsynthError(f"cannot read images of shape {np.shape(images)} as (N x) H x W (x C)")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise MedsynthError(f"float images must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise MedsynthError(f"image folder not found: {folder}")
    files = sorted(p for ext in IMAGE_EXTENSIONS for p in folder.glob(f"*.{ext}"))
    if not files:
        raise MedsynthError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def folder_batches(folder: str | os.PathLike, batch_size: int = 50) -> Iterator[torch.Tensor]:
    """Images read as pytorch-fid does (PIL convert("RGB"), /255); same-size runs are batched together."""
    return image_batches(list_images(folder), "native", batch_size)


def parse_resize(spec: str) -> tuple[str | None, int | None]:
    """'native' -> (None, None); 'bicubic64' -> ('bicubic', 64)."""
    if spec == "native":
        return None, None
    m = re.fullmatch(r"(" + "|".join(RESIZE_FILTERS) + r")(\d+)", spec)
    if not m or int(m.group(2)) < 8:
        raise MedsynthError(f"resize mode '{spec}' is not 'native' or <filter><size> with filter in "
                            f"{RESIZE_FILTERS} and size >= 8 (e.g. bicubic64)")
    return m.group(1), int(m.group(2))


def read_image(path: str | os.PathLike, resize: str = "native") -> np.ndarray:
    """An image as H x W x 3 uint8, read as pytorch-fid reads it (PIL convert('RGB')); 16-bit grayscale PNGs are
    scaled to 8 bits first (PIL's own conversion would clip them). Optionally resized (PIL, `resize` spec)."""
    from PIL import Image

    filt, size = parse_resize(resize)
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8))
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), getattr(Image.Resampling, filt.upper()))
            return np.asarray(im)
    except OSError as err:
        raise RejectedInput("unreadable image", f"{Path(path).name}: {err}") from err


def image_batches(paths: Sequence[str | os.PathLike], resize: str = "native",
                  batch_size: int = 50) -> Iterator:
    """Streams batches (N x 3 x H x W in [0, 1]); consecutive images of one size are batched together."""
    parse_resize(resize)
    batch: list[np.ndarray] = []
    for path in paths:
        arr = read_image(path, resize)
        if batch and (arr.shape != batch[0].shape or len(batch) == batch_size):
            yield to_batch(np.stack(batch))
            batch = []
        batch.append(arr)
    if batch:
        yield to_batch(np.stack(batch))
