"""torchxrayvision's DenseNet-121 from a local weights file (its weights are not shipped; the hub is offline).

torchxrayvision's own loader unpickles whole-model .pt files (`weights_only=False`). We never do that: a .pt file
is read with `torch.load(weights_only=True)`, which only rebuilds tensors and the allow-listed module classes below,
and `.safetensors` state dicts are preferred (`medsynth convert-xrv-weights` writes one).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import MedsynthError

XRV_INPUT_SIZE = 224
# torchxrayvision's pathology names -> the CheXpert label space of our manifests (labels it lacks: No Finding,
# Support Devices, Pleural Other)
XRV_TO_CHEXPERT = {"Atelectasis": "Atelectasis", "Consolidation": "Consolidation", "Pneumothorax": "Pneumothorax",
                   "Edema": "Edema", "Effusion": "Pleural Effusion", "Pneumonia": "Pneumonia",
                   "Cardiomegaly": "Cardiomegaly", "Lung Lesion": "Lung Lesion", "Fracture": "Fracture",
                   "Lung Opacity": "Lung Opacity", "Enlarged Cardiomediastinum": "Enlarged Cardiomediastinum"}


def _safe_globals():
    import collections

    import torchxrayvision as xrv
    from torch import nn

    return [xrv.models.DenseNet, xrv.models._DenseBlock, xrv.models._DenseLayer, xrv.models._Transition,
            nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Linear, nn.Sequential,
            collections.OrderedDict, set]


def read_state_dict(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MedsynthError(f"torchxrayvision weights not found at {path}: download the DenseNet-121 weights "
                            "(e.g. densenet121-res224-all) on a machine with internet and set its path in the config")
    from ..safe_load import load_tensor_file

    obj = load_tensor_file(path, "torchxrayvision DenseNet-121", _safe_globals())
    return obj.state_dict() if hasattr(obj, "state_dict") else obj


def load_xrv_densenet(path: Path, weights_name: str = "densenet121-res224-all"):
    """The 18-pathology DenseNet-121 with the labels of `weights_name`, weights from `path`. Returns (model, sha256)."""
    import torchxrayvision as xrv

    model = xrv.models.DenseNet(weights=None, num_classes=len(xrv.models.model_urls[weights_name]["labels"]))
    state = read_state_dict(path)
    state.pop("op_threshs", None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [m for m in missing if m != "op_threshs"] or unexpected:
        raise MedsynthError(f"{path} is not a torchxrayvision DenseNet-121 state dict "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.targets = model.pathologies = xrv.models.model_urls[weights_name]["labels"]
    model.op_threshs = torch.tensor(xrv.models.model_urls[weights_name]["op_threshs"])
    return model.eval(), hashlib.sha256(Path(path).read_bytes()).hexdigest()


def xrv_input(images01: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] images in [0,1] -> torchxrayvision's input convention: [-1024, 1024], 224x224."""
    x = torch.nn.functional.interpolate(images01, size=(XRV_INPUT_SIZE, XRV_INPUT_SIZE), mode="bilinear",
                                        align_corners=False, antialias=True)
    return (2 * x - 1) * 1024


@torch.no_grad()
def xrv_features(model, images01: torch.Tensor) -> torch.Tensor:
    """1024-d `features2` of torchxrayvision's DenseNet (its own normalisation applied here)."""
    return model.features2(xrv_input(images01))


@torch.no_grad()
def xrv_predict(model, images01: torch.Tensor, labels: list[str], batch: int = 32):
    """N x len(labels) scores for CheXpert-named `labels` from a torchxrayvision DenseNet: its sigmoid outputs after
    its operating-point calibration (op_norm), so 0.5 is each pathology's published operating threshold."""
    import numpy as np

    chex_to_xrv = {v: k for k, v in XRV_TO_CHEXPERT.items()}
    missing = [lab for lab in labels if chex_to_xrv.get(lab) not in list(model.pathologies)]
    if missing:
        raise MedsynthError(f"torchxrayvision's model has no output for {missing}; score those labels with the "
                            "project's own classifier")
    cols = [list(model.pathologies).index(chex_to_xrv[lab]) for lab in labels]
    out = [model(xrv_input(images01[i:i + batch].float()))[:, cols] for i in range(0, len(images01), batch)]
    return np.concatenate([o.numpy() for o in out])


def convert_to_safetensors(src: Path, dst: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in read_state_dict(src).items() if isinstance(v, torch.Tensor)}
    save_file(state, str(dst))
