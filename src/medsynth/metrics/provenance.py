"""Result records: every number carries what produced it (design: "Metrics and their honesty")."""
from __future__ import annotations

import functools
import math
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import MedsynthError
from ..io import read_json, write_json


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """medsynth.__version__, plus `git describe` when the package runs from a git checkout."""
    src = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    described = out.stdout.strip()
    return f"{__version__}+git.{described}" if out.returncode == 0 and described else __version__


@dataclass
class MetricRecord:
    metric: str                      # e.g. "fid", "kid", "ssim", "chexpert@10"
    value: float
    n: int                           # images / reports / pairs the value is computed over
    std: float | None = None         # spread where the paper reports one (KID/IS over subsets, SSIM over images)
    backbone: str | None = None      # feature network, e.g. "inception-fid" or the labelled "inception-random"
    weights_sha256: str | None = None
    resize_mode: str | None = None
    seed: int | None = None
    definition: str | None = None    # one line: how the number is computed (data range, kernel, k, ...)
    extra: dict[str, Any] = field(default_factory=dict)  # dataset, split, subset size, per-class values, ...
    code_version: str = field(default_factory=code_version)

    def __post_init__(self):
        if not isinstance(self.value, (int, float)) or math.isnan(float(self.value)):
            raise MedsynthError(f"metric '{self.metric}' has no numeric value ({self.value!r})")
        if self.n < 1:
            raise MedsynthError(f"metric '{self.metric}' computed over {self.n} items")
        self.value = float(self.value)
        self.std = None if self.std is None else float(self.std)

    @property
    def is_substitute_backbone(self) -> bool:
        """True when the features come from a labelled stand-in, so a report must not set it beside paper values
        without saying so."""
        return self.backbone is not None and self.backbone.endswith("-random")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | os.PathLike) -> None:
        write_json(self.to_dict(), path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "MetricRecord":
        data = read_json(path)
        try:
            return cls(**data)
        except TypeError as err:
            raise MedsynthError(f"{path} is not a metric record: {err}") from err
