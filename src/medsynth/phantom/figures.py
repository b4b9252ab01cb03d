"""Figures of the phantom cohort: radiographs with the ground-truth lesion outline, per finding."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom

from ..io import write_figure
from .attributes import FINDINGS
from .findings import FINDING_BITS


def display_pixels(path: Path) -> np.ndarray:
    """DICOM -> float 0..1 with bright = attenuating, whatever the photometric interpretation."""
    ds = pydicom.dcmread(path)
    a = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-6)
    return 1 - a if ds.PhotometricInterpretation == "MONOCHROME1" else a


def _examples(table: pd.DataFrame, finding: str, n: int) -> pd.DataFrame:
    """Patients with the finding, those with it alone first (clearest illustration)."""
    if finding == "no_finding":
        return table[table["finding_list"] == "no_finding"].head(n)
    has = table[table[finding] == 1]
    alone = has["finding_list"] == finding
    return pd.concat([has[alone], has[~alone]]).head(n)


def _panel(ax, row, base: Path, finding: str) -> None:
    ax.imshow(display_pixels(base / row["cxr_pa"]), cmap="gray", vmin=0, vmax=1)
    if finding != "no_finding":
        bits = cv2.imread(str(base / row["lesion2d_pa"]), cv2.IMREAD_UNCHANGED)
        m = (bits & (1 << FINDING_BITS[finding])) > 0
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors="red", linewidths=0.8)
        sev = row[f"{finding}_severity"]
        side = row[f"{finding}_side"]
        ax.set_title(f"{sev} {side}".strip(), fontsize=7)
    ax.set_axis_off()


def overview(table: pd.DataFrame, base: Path, out: Path, per_row: int = 4) -> None:
    """One row per finding (and one without findings), `per_row` patients each, lesion outlined in red."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ["no_finding"] + FINDINGS
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.9 * per_row + 1, 2.0 * len(rows)), squeeze=False)
    for r, finding in enumerate(rows):
        ex = _examples(table, finding, per_row)
        for c in range(per_row):
            ax = axes[r, c]
            if c < len(ex):
                _panel(ax, ex.iloc[c], base, finding)
            else:
                ax.set_axis_off()
        axes[r, 0].text(-0.08, 0.5, finding.replace("_", " "), transform=axes[r, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=9)
    fig.suptitle(f"Phantom cohort (n={len(table)}): PA radiographs, ground-truth lesion outlines", fontsize=10)
    fig.tight_layout()
    write_figure(fig, out)


def contact_sheets(table: pd.DataFrame, base: Path, out_dir: Path, n: int = 12) -> list[Path]:
    """findings_<finding>.png per finding present in the cohort: up to n patients with it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for finding in FINDINGS:
        ex = _examples(table, finding, n)
        if ex.empty:
            continue
        cols = 4
        nrows = int(np.ceil(len(ex) / cols))
        fig, axes = plt.subplots(nrows, cols, figsize=(2.0 * cols, 2.1 * nrows), squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k < len(ex):
                _panel(ax, ex.iloc[k], base, finding)
            else:
                ax.set_axis_off()
        fig.suptitle(f"{finding} (n={int(table[finding].sum())} of {len(table)})", fontsize=10)
        fig.tight_layout()
        path = Path(out_dir) / f"findings_{finding}.png"
        write_figure(fig, path)
        written.append(path)
    return written
