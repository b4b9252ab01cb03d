"""Classifier architectures with a `features` method (penultimate layer) for domain feature distances."""
from __future__ import annotations

import torch
from torch import nn


class SmallCXRNet(nn.Module):
    """A compact CNN that trains in seconds on CPU at demo size (the demo's stand-in for DenseNet-121)."""

    def __init__(self, n_labels: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        chans = [1, width, width * 2, width * 4, width * 4]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], feature_dim), nn.ReLU())
        self.classifier = nn.Linear(feature_dim, n_labels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class JudgeCNN(SmallCXRNet):
    """SmallCXRNet with a head that pools both the mean and the maximum of its last feature map: a small lesion
    (a nodule, a pneumothorax rim) is a local maximum that average pooling alone dilutes. Dropout before the
    classifier (the judge trains on a few hundred images)."""

    def __init__(self, n_labels: int, width: int = 32, feature_dim: int = 128):
        super().__init__(n_labels, width, feature_dim)
        chans = width * 4
        self.head = nn.Sequential(nn.Linear(2 * chans, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


class FastJudge(nn.Module):
    """The narrow judge (the ci run's; chen2024 Table 2's classifiers): five 3x3 conv + pool stages that start
    narrow at full resolution (8 channels at 128 px, doubling each stage), a mean+max pooled head (a nodule is a
    local maximum) and dropout. ~6x cheaper per image than JudgeCNN on one CPU core; on the phantom judge cohort it
    confuses nodules with consolidation more than WideJudge does."""

    def __init__(self, n_labels: int, chans=(8, 16, 32, 64, 128), feature_dim: int = 128):
        super().__init__()
        layers, cin = [], 1
        for c in chans:
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * cin, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(feature_dim, n_labels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


class WideJudge(FastJudge):
    """The demo judge: FastJudge at twice the width (16 -> 256 channels). On the phantom judge cohort the narrow net
    tells nodules from consolidation poorly (they are what it confuses): at 2000 patients it scores held-out Lung
    Lesion / Consolidation AUC 0.935 / 0.971, this one 0.953-0.954 / 0.968-0.972 (seeds 0 and 1), at ~2.7x the
    training time (issue 18; medsynth.phantom.findings has the history)."""

    def __init__(self, n_labels: int):
        super().__init__(n_labels, chans=(16, 32, 64, 128, 256))


class DenseNet121(nn.Module):
    """torchvision's DenseNet-121 on one input channel (the architecture the papers' classifiers use)."""

    def __init__(self, n_labels: int):
        super().__init__()
        from torchvision.models import densenet121

        net = densenet121(weights=None, num_classes=n_labels)
        net.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.net.features(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(self.features(x))


ARCHS = {"small_cnn": SmallCXRNet, "judge_cnn": JudgeCNN, "judge_fast": FastJudge, "judge_wide": WideJudge,
         "densenet121": DenseNet121}


def build_classifier(arch: str, n_labels: int) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown classifier arch {arch!r} (known: {sorted(ARCHS)})")
    return ARCHS[arch](n_labels)
