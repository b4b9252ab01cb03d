"""Step: CLAHE before/after figure for a few processed images of a dataset.

"after" is the processed PNG the pipeline wrote; "before" is recomputed from the row's source file (private raw manifest) with the same
preprocessing settings and CLAHE switched off, so the only difference shown is CLAHE. A third row overlays the
two intensity histograms.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes have no display
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medsynth.errors import RejectedInput  # noqa: E402
from medsynth.io import read_table, write_figure  # noqa: E402
from medsynth.preprocess.images import load_levels, preprocess_settings, render  # noqa: E402
from medsynth.workflow import script_logging  # noqa: E402

N_IMAGES = 4

log = script_logging(snakemake)
results = Path(snakemake.params.results)
pp = preprocess_settings(snakemake.params.dataset)
manifest = read_table(snakemake.input.manifest)
# The shareable manifest has no source paths; the private raw manifest maps each id to its source file.
sources = read_table(snakemake.input.sources).set_index("id")["source"]
# Deterministic pick: the first rows by id (ids are pseudonymous hashes, so this is an arbitrary but stable sample).
rows = manifest.sort_values("id").head(N_IMAGES) if len(manifest) else manifest
panels = []
for row in rows.to_dict("records"):
    after = cv2.imread(str(results / row["image"]), cv2.IMREAD_UNCHANGED)
    if after is None:
        raise FileNotFoundError(f"processed image missing: {row['image']}")
    try:
        levels, _ = load_levels(str(sources.get(row["id"], "")))
    except RejectedInput as exc:  # the source changed since preprocessing: show what we have, say why
        log.warning("image %s: cannot recompute the pre-CLAHE image (%s)", row["id"], exc.reason)
        continue
    before = render(levels, pp, clahe=False)
    panels.append((str(row["id"])[:10], before, after))

full = 255 if pp["bit_depth"] == 8 else 65535
cols = max(1, len(panels))
fig, axes = plt.subplots(3, cols, figsize=(3.2 * cols, 9.6), squeeze=False)
for j, (name, before, after) in enumerate(panels):
    for i, (img, label) in enumerate(((before, "before CLAHE"), (after, "after CLAHE"))):
        axes[i][j].imshow(img, cmap="gray", vmin=0, vmax=full)
        axes[i][j].set_title(f"{name}: {label}", fontsize=8)
        axes[i][j].axis("off")
    bins = np.linspace(0, full, 65)
    axes[2][j].hist(before.ravel(), bins=bins, alpha=0.6, label="before")
    axes[2][j].hist(after.ravel(), bins=bins, alpha=0.6, label="after")
    axes[2][j].set_yticks([])
    axes[2][j].legend(fontsize=7)
if not panels:
    log.warning("no processed images to show for %s", snakemake.wildcards.dataset)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0][0].text(0.5, 0.5, "no processed images", ha="center", va="center")
clahe = pp["clahe"]
fig.suptitle(f"{snakemake.wildcards.dataset}: CLAHE clip {clahe['clip_limit']}, tiles {clahe['tile_grid']}, "
             f"{pp['image_size']} px, {pp['bit_depth']}-bit", fontsize=10)
fig.tight_layout()
out = Path(snakemake.output[0])
write_figure(fig, out, dpi=100)
log.info("wrote %s (%d images)", out.name, len(panels))
