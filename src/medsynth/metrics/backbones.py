"""Feature backbones for distribution metrics (FID/KID/IS and domain Frechet distances), chosen by name.

Every backbone takes N x 3 x H x W images in [0, 1] (what ``fid.to_batch`` makes) and returns
(N x d features, N x 1008 logits or None); every evaluator carries a ``BackboneInfo`` (name, weights file, sha256,
resize mode) that each result records.

- ``inception-fid``     pytorch-fid's InceptionV3 with the real FID weights (torch hub cache or a configured file).
- ``inception-random``  the same architecture with seeded random weights: a labelled STAND-IN for offline runs.
- ``xrv-densenet121``   torchxrayvision's DenseNet-121 ``features2`` (1024-d) with its own normalisation
                        ([-1024, 1024], 224 x 224), weights from a configured local file; never downloaded.
- ``classifier``        the project's own classifier (``rules/evaluate.smk: train_classifier``), penultimate
                        features: the domain-feature STAND-IN where the torchxrayvision weights are absent.

Stand-ins are allowed only where the config names them explicitly; ``check_backbone_allowed`` refuses the random
Inception in a paper-scale run, and the report marks every cell computed with a stand-in.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MedsynthError
from .inception import BackboneInfo, sha256_file

FEATURE_BACKBONES = ("inception-fid", "inception-random", "xrv-densenet121", "classifier")
XRV_RESIZE = "bilinear-antialias-224-in-model, xrv [-1024, 1024]"


def check_backbone_allowed(backbone: str, scale: str, key: str | None = None) -> None:
    """A paper-scale run never uses the random Inception: the config must point at the real weights. `key`: the
    config key that names the backbone, for the message."""
    where = f"config error at '{key}': " if key else ""
    if backbone not in FEATURE_BACKBONES:
        raise MedsynthError(f"{where}unknown metrics backbone '{backbone}'; choose one of "
                            f"{', '.join(FEATURE_BACKBONES)}")
    if scale == "paper" and backbone == "inception-random":
        raise MedsynthError(f"{where or 'config error: '}scale: paper with backbone 'inception-random': set "
                            f"{key or 'the backbone'} to inception-fid (weights from metrics.inception_weights or "
                            "the torch hub cache), or disable that study; the random stand-in is for demo/ci runs only")


class XRVFeatures(nn.Module):
    """torchxrayvision DenseNet-121 ``features2`` as a metrics backbone (first channel of a replicated gray image)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        from ..classifier.xrv import xrv_features

        return xrv_features(self.model, x[:, :1].float()), None


class ClassifierFeatures(nn.Module):
    """The project's classifier's penultimate features, inputs resized as its training data were (load_gray)."""

    def __init__(self, model: nn.Module, image_size: int):
        super().__init__()
        self.model = model.eval()
        self.image_size = int(image_size)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        g = x[:, :1].float()
        if g.shape[-2:] != (self.image_size, self.image_size):
            g = F.interpolate(g, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return self.model.features(g), None


def load_feature_backbone(backbone: str, weights: str | os.PathLike | None = None, *, card=None, dims: int = 2048,
                          seed: int = 0, cache_dir: str | os.PathLike | None = None,
                          device: str = "cpu") -> tuple[nn.Module, BackboneInfo, int]:
    """(module, info, feature dims). `weights`: the Inception .pth/.safetensors, the torchxrayvision DenseNet file,
    or the classifier's .safetensors (then `card` is its JSON card)."""
    if backbone in ("inception-fid", "inception-random"):
        from .inception import load_backbone

        model, info = load_backbone(backbone, weights, dims, seed=seed, cache_dir=cache_dir, device=device)
        return model, info, dims
    if backbone == "xrv-densenet121":
        if not weights:
            raise MedsynthError("backbone 'xrv-densenet121' needs a local weights file: set the config key "
                                "xrv_weights (torchxrayvision's densenet121-res224-all .pt or a converted "
                                ".safetensors); weights are never downloaded")
        from ..classifier.xrv import load_xrv_densenet

        model, sha = load_xrv_densenet(Path(weights))
        return (XRVFeatures(model).to(device), BackboneInfo("xrv-densenet121", str(weights), sha, XRV_RESIZE),
                1024)
    if backbone == "classifier":
        if not weights or not card:
            raise MedsynthError("backbone 'classifier' needs the trained classifier's weights and card "
                                "(rule train_classifier: models/classifier/<dataset>/model.safetensors + model.json)")
        from ..classifier.train import load_classifier

        model, meta = load_classifier(Path(weights), Path(card))
        with torch.no_grad():
            dim = int(model.features(torch.zeros(1, 1, meta["image_size"], meta["image_size"])).shape[1])
        info = BackboneInfo(f"classifier:{meta.get('arch', '?')}", str(weights), sha256_file(weights),
                            f"bilinear-antialias-{meta['image_size']}-in-model")
        return ClassifierFeatures(model, meta["image_size"]).to(device), info, dim
    raise MedsynthError(f"unknown metrics backbone '{backbone}'; choose one of {', '.join(FEATURE_BACKBONES)}")


METRICS_DEFAULTS = {"dims": 2048, "batch_size": 50, "kid_subsets": 100, "kid_subset_size": 1000, "is_splits": 10,
                    "reservoir_size": 10000}


def metrics_settings(config: dict) -> dict:
    """The config's `metrics:` section over the defaults (pytorch-fid's 2048-d pool3, torch-fidelity's KID)."""
    return {**METRICS_DEFAULTS, **{k: v for k, v in (config.get("metrics") or {}).items() if k in METRICS_DEFAULTS}}


def rule_inputs(config: dict, results: str, backbone: str, dataset: str, key: str | None = None) -> dict:
    """The files a metrics job with `backbone` reads (inputs, so a changed weights file reruns it). Raises at DAG
    time -- before any job starts -- for a missing weights file or a stand-in that the run's scale forbids."""
    from .inception import FID_WEIGHTS_URL, default_fid_weights_path

    check_backbone_allowed(backbone, config.get("scale", "demo"), key)
    if backbone == "classifier":
        base = f"{results}/models/classifier/{dataset}"
        return {"weights": f"{base}/model.safetensors", "card": f"{base}/model.json"}
    if backbone == "xrv-densenet121":
        path = config.get("xrv_weights")
        if not path or not Path(path).is_file():
            raise MedsynthError(f"backbone 'xrv-densenet121': config key xrv_weights is "
                                f"{'unset' if not path else f'{path!r}, which does not exist'}; give a local "
                                "torchxrayvision DenseNet-121 file, or name backbone 'classifier' (labelled "
                                "stand-in) instead")
        return {"weights": str(path)}
    if backbone == "inception-fid":
        path = (config.get("metrics") or {}).get("inception_weights") or str(default_fid_weights_path())
        if not Path(path).is_file():
            raise MedsynthError(f"backbone 'inception-fid': weights {path} not found. Download {FID_WEIGHTS_URL} "
                                "on a connected machine and set config key metrics.inception_weights (or put it in "
                                "the torch hub cache); a demo may name backbone 'inception-random' (labelled)")
        return {"weights": str(path)}
    return {}
