"""Reading user-supplied weights files without unpickling code: .safetensors, or a .pth/.pt tensor dict through
torch.load(weights_only=True). A file either loader refuses becomes one MedsynthError naming the file; the
loaders' own messages (torch's suggests weights_only=False, i.e. running the file's code) are not passed on."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import MedsynthError


def load_tensor_file(path: str | os.PathLike, what: str, safe_globals: list | tuple = ()) -> object:
    """The object stored in `path` (a state dict, or an allow-listed module for `safe_globals`)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MedsynthError(f"{what} weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any refusal or corruption: one line naming the file
        raise MedsynthError(
            f"{what} weights file {path} is not readable as plain tensors ({type(err).__name__}; size "
            f"{path.stat().st_size} bytes): re-download it, or convert it on a trusted machine to .safetensors. "
            "medsynth never loads weights by unpickling"
        ) from None
