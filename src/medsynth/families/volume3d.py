"""What the 3D families (`ddpm3d`, `pix2pix3d`) share: reading preprocessed CT crops and their masks, the frozen text
encoder's conditioning, saving/loading a model folder (config.json + safetensors) and writing sampled volumes.

Crops are the volume preprocessing's .npz files (medsynth.preprocess.volumes: `image` 1 x X x Y x Z in [0, 1], the
HU window applied; `mask` 4 x X x Y x Z one-hot). Models see images in [-1, 1] and the one-hot mask as channels.
Samples are written in the same layout (`image` in [0, 1], float16, and the conditioning `mask`), so the generic
volume_metrics rule reads generated and real volumes alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import MedsynthError
from ..io import atomic_path

CONFIG_NAME = "config.json"


def read_crop(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image 1 x X x Y x Z float32 in [0, 1], mask C x X x Y x Z float32) of one preprocessed crop."""
    path = Path(path)
    if not path.is_file():
        raise MedsynthError(f"volume crop {path} does not exist")
    with np.load(path, allow_pickle=False) as data:
        if "image" not in data or "mask" not in data:
            raise MedsynthError(f"{path.name}: a crop needs 'image' and 'mask' arrays (keys: {', '.join(data.files)})")
        return data["image"].astype(np.float32), data["mask"].astype(np.float32)


def load_crops(manifest, results: Path, splits=("train",)) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (N, 1, X, Y, Z) in [-1, 1], masks (N, C, X, Y, Z) and prompts of the manifest's rows in `splits`."""
    from ..training.stages import split_rows

    rows = split_rows(manifest, list(splits))
    images, masks = zip(*(read_crop(Path(results) / p) for p in rows["image"]))
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise MedsynthError(f"crops of several sizes {sorted(shapes)}: set one volume.crop for the dataset")
    return (torch.from_numpy(np.stack(images)) * 2 - 1, torch.from_numpy(np.stack(masks)),
            rows["prompt"].fillna("").astype(str).tolist())


def table_masks(table, results: Path) -> torch.Tensor:
    """(N, C, X, Y, Z) conditioning masks of a prompt table's rows (`mask`: crop .npz relative to results)."""
    if "mask" not in table:
        raise MedsynthError("3D sampling needs a prompt set drawn from the dataset's splits (rows with a 'mask')")
    return torch.from_numpy(np.stack([read_crop(Path(results) / p)[1] for p in table["mask"]]))


class TextConditioner:
    """Frozen text encoder of a model entry's `text_encoder:` block: pooled (N, D) vectors, or (N, L, D) token
    states where the block's extraction is 'tokens'. No block: no text (dim 0)."""

    def __init__(self, entry: dict | None, device: str = "cpu"):
        self.entry = dict(entry) if entry else None
        self.encoder = self.tokenizer = None
        self.device = device
        if self.entry:
            from ..models.loading import load_text_encoder

            self.entry.setdefault("extraction", "mean")
            self.encoder, self.tokenizer = load_text_encoder(self.entry)
            self.encoder.requires_grad_(False).eval().to(device)

    @property
    def saved_modules(self) -> dict:
        """A `random_init` encoder (an untrained control) exists only in this run: the model folder keeps it."""
        return {"text_encoder": self.encoder} if self.entry and self.entry.get("random_init") else {}

    def load_saved(self, folder: Path) -> "TextConditioner":
        for name, module in self.saved_modules.items():
            load_weights(folder, name, module)
        return self

    @property
    def tokens(self) -> bool:
        return bool(self.entry) and self.entry["extraction"] == "tokens"

    @property
    def dim(self) -> int:
        return int(self.encoder.output_dim) if self.encoder is not None else 0

    @torch.no_grad()
    def __call__(self, prompts: list[str], batch_size: int = 32) -> torch.Tensor | None:
        if self.encoder is None:
            return None
        from ..models.text_encoders import encode

        out = [encode(self.encoder, self.tokenizer, prompts[i:i + batch_size], self.device).float()
               for i in range(0, len(prompts), batch_size)]
        ctx = torch.cat(out)
        return ctx if self.tokens else ctx[:, 0]   # pooled extractions repeat one vector along L


def save_folder(out: Path, config: dict, modules: dict[str, torch.nn.Module]) -> None:
    """out/config.json (the entry's settings needed to rebuild) + out/<name>.safetensors per module."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        with atomic_path(out / f"{name}.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))
    with atomic_path(out / CONFIG_NAME) as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2, sort_keys=True))


def read_folder_config(folder: Path, kind: str) -> dict:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise MedsynthError(f"{folder} is not a saved {kind} model (no {CONFIG_NAME})")
    config = json.loads(path.read_text())
    if config.get("kind") != kind:
        raise MedsynthError(f"{folder} holds a '{config.get('kind')}' model, not '{kind}'")
    return config


def load_weights(folder: Path, name: str, module: torch.nn.Module) -> torch.nn.Module:
    from safetensors.torch import load_file

    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        raise MedsynthError(f"{folder} lacks {name}.safetensors")
    module.load_state_dict(load_file(str(path)))
    return module


def write_volumes(out_dir: Path, names, images: torch.Tensor, masks: torch.Tensor) -> None:
    """Each generated (1, X, Y, Z) volume in [-1, 1] -> out_dir/<name> (.npz: image in [0, 1], mask)."""
    for name, img, mask in zip(names, images, masks):
        vol = ((img.float().clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float16)
        with atomic_path(Path(out_dir) / name) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, image=vol, mask=mask.cpu().numpy().astype(np.uint8))


def batches(n: int, size: int):
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def train_config(block: dict, seed: int):
    from ..training.loop import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    train = dict(block.get("train") or {})
    unknown = sorted(set(train) - known)
    if unknown:
        raise MedsynthError(f"unknown train settings {unknown}")
    return TrainConfig(**{"seed": seed, **train})
