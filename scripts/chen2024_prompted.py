"""Step (chen2024): images of the LLM-written anatomy-pathology prompts, through the model's family (seeded,
batched), and a sample grid per prompt."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from medsynth.families import family_of
from medsynth.io import atomic_path, read_table, write_table
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
fam = family_of(snakemake.params.model)
table = read_table(snakemake.input.prompts)
table.insert(0, "file", [f"{i:05d}.{fam.outputs}" for i in range(len(table))])
out_dir = Path(snakemake.output.table).parent
table = fam.sample(fam.load(snakemake.params.folder), table, out_dir, snakemake.params.spec,
                   Path(snakemake.params.results))
write_table(table, snakemake.output.table)

groups = list(table.groupby("prompt_id", sort=True))
cols = max(len(g) for _, g in groups)
fig, axes = plt.subplots(len(groups), cols + 1, figsize=(2 * cols + 4, 2 * len(groups)), squeeze=False)
for r, (_, g) in enumerate(groups):
    text = g["prompt"].iloc[0]
    axes[r, 0].text(0, 0.5, f"A: {g['anatomy'].iloc[0]}\nP: {g['pathology'].iloc[0]}\n" + "\n".join(
        text[i:i + 34] for i in range(0, min(len(text), 170), 34)), fontsize=6, va="center")
    for c in range(cols + 1):
        axes[r, c].axis("off")
    for c, (_, row) in enumerate(g.iterrows()):
        axes[r, c + 1].imshow(np.asarray(Image.open(out_dir / row["file"])), cmap="gray")
        axes[r, c + 1].set_title(f"seed {row['seed']}", fontsize=6)
fig.tight_layout()
with atomic_path(snakemake.output.grid) as tmp:
    fig.savefig(tmp, format="png", dpi=110)
log.info("%d images of %d prompts", len(table), len(groups))
