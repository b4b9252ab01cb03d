"""Step: xing2024 sample slices: the mid axial slice of the first crops, real beside each Table 1 model's sample
for the same mask (and seed)."""
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medsynth.io import atomic_path, read_table  # noqa: E402
from medsynth.workflow import script_logging  # noqa: E402

log = script_logging(snakemake)
p = snakemake.params
tables = {row: read_table(path) for row, path in zip(p.rows, snakemake.input.samples)}
first = next(iter(tables.values()))
n = min(3, len(first))


def mid(path):
    vol = np.load(path, allow_pickle=False)["image"][0].astype(np.float32)
    return vol[:, :, vol.shape[-1] // 2].T


fig, axes = plt.subplots(n, 1 + len(tables), figsize=(2.0 * (1 + len(tables)), 2.1 * n), squeeze=False)
for i in range(n):
    axes[i][0].imshow(mid(Path(p.results) / first["source_image"].iloc[i]), cmap="gray", vmin=0, vmax=1,
                      origin="lower")
    axes[i][0].set_title("real", fontsize=8)
    for c, (row, t) in enumerate(tables.items(), start=1):
        axes[i][c].imshow(mid(Path(snakemake.input.samples[c - 1]).parent / t["file"].iloc[i]), cmap="gray",
                          vmin=0, vmax=1, origin="lower")
        axes[i][c].set_title(row, fontsize=7)
for ax in axes.flat:
    ax.axis("off")
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
log.info("sample grid: %d crops x %d models", n, len(tables))
