"""Step (chen2024 Module 2, visual codebook): key patches per anatomy / pathology word from the train split's
images and reports (medsynth.keypatches), as a table and a figure of each word's top patches."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from diffusers import VQModel

from medsynth.anatomy_pathology import report_texts
from medsynth.io import atomic_path, read_table, write_table
from medsynth.keypatches import key_patches, patch_features
from medsynth.training.data import FileImages
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
results = Path(p.results)
vq = VQModel.from_pretrained(Path(snakemake.input.vq).parent).eval()
rows = read_table(snakemake.input.manifest)
rows = rows[rows["split"] == "train"].reset_index(drop=True)
images = FileImages([results / f for f in rows["image"]], vq.config.sample_size, 1, resize=True)
batch = images.get(range(len(images)))
feats, codes = patch_features(vq, batch)
table = key_patches(feats, codes, report_texts(rows), read_table(snakemake.input.vocabulary), int(p.top))
table["image_id"] = rows["id"].to_numpy()[table["image"]]
write_table(table.assign(model=p.model, dataset=p.dataset, feature="VQ encoder latent"), snakemake.output.table)

# the 10 words that change the image most (effect size: comparable across words; similarity ranks within a word)
words = table.groupby("word", sort=False)["effect"].max().sort_values(ascending=False).index[:10]
g = codes.shape[1]
patch = vq.config.sample_size // g
fig, axes = plt.subplots(max(len(words), 1), int(p.top), figsize=(1.3 * int(p.top), 1.4 * max(len(words), 1)),
                         squeeze=False)
if not len(words):   # every word in too few (or too many) reports to contrast: say so instead of an empty figure
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].text(0, 0.5, "no vocabulary word is in enough reports (and missing from enough) to contrast",
                    fontsize=7, transform=axes[0, 0].transAxes)
for r, word in enumerate(words):
    sub = table[table["word"] == word].reset_index(drop=True)
    for c in range(int(p.top)):
        ax = axes[r, c]
        ax.axis("off")
        if c < len(sub):
            k = sub.iloc[c]
            img = (batch[int(k["image"]), 0].numpy() + 1) / 2
            y0, x0 = max(0, (int(k["row"]) - 1) * patch), max(0, (int(k["col"]) - 1) * patch)
            ax.imshow(img[y0:y0 + 3 * patch, x0:x0 + 3 * patch], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{word if c == 0 else ''} {k['similarity']:.2f}", fontsize=6)
fig.suptitle(f"Key patches per word, {len(rows)} train images (3x3-token crops centred on the patch)\n"
             "the 10 words with the largest effect size; per patch: cosine to the word's change there x relative effect size", fontsize=7)
fig.tight_layout()
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=110)
log.info("%d key patches for %d words", len(table), table["word"].nunique())
