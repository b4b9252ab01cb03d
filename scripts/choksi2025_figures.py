"""Step: choksi2025 figures: sample grid of the poster's six prompts, the effusion text-control figure (same seed,
normal vs effusion prompt, difference map, the cohort's effusion region), training curves."""
import textwrap
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from medsynth.io import atomic_path, read_json, read_table, write_json
from medsynth.papers.choksi2025 import cohort_region, has_region, region_effect
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params


def save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def images(table_path):
    table = read_table(table_path)
    folder = Path(table_path).parent
    return table, np.stack([np.asarray(Image.open(folder / f).convert("L")) for f in table["file"]])


# -- grid: one row per prompt, one column per seed
table, imgs = images(snakemake.input.examples)
prompts = list(dict.fromkeys(table["prompt"]))
seeds = sorted(table["seed"].unique())
fig, axes = plt.subplots(len(prompts), len(seeds), figsize=(1.6 * len(seeds) + 2.6, 1.6 * len(prompts)),
                         squeeze=False)
for r, prompt in enumerate(prompts):
    for c, seed in enumerate(seeds):
        ax = axes[r, c]
        ax.imshow(imgs[(table["prompt"] == prompt) & (table["seed"] == seed)][0], cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([]); ax.set_yticks([])
        if c == 0:
            ax.set_ylabel("\n".join(textwrap.wrap(prompt, 22)), fontsize=7, rotation=0, ha="right", va="center")
        if r == 0:
            ax.set_title(f"seed {seed}", fontsize=7)
fig.suptitle(f"Poster prompts ({p.scale} scale, {int(table['steps'][0])} DDIM steps, "
             f"guidance {table['guidance_scale'][0]:g})", fontsize=9)
save(fig, snakemake.output.grid)

# -- effusion: the two prompts share seeds, so each pair differs only by the text
table, imgs = images(snakemake.input.effusion)
normal_prompt, finding_prompt = list(dict.fromkeys(table["prompt"]))
seeds = sorted(table["seed"].unique())
pick = lambda prompt: np.stack([imgs[(table["prompt"] == prompt) & (table["seed"] == s)][0] for s in seeds])
normal, finding = pick(normal_prompt), pick(finding_prompt)
manifest = read_table(snakemake.input.manifest)
if has_region(manifest):
    freq, n_masks = cohort_region(manifest, Path(p.results), normal.shape[-1])
    region = freq >= 0.5 * freq.max()
    effect = region_effect(normal, finding, region)
else:  # a tiny cohort may hold no right-sided effusion: say so instead of drawing a made-up region
    region, n_masks = np.zeros(normal.shape[-2:], bool), 0
    effect = {"ratio": None, "n_pairs": len(seeds), "reason": "no right/bilateral effusion with a mask in the cohort",
              "mean_abs_diff": float(np.abs(finding.astype(float) - normal).mean())}
effect.update({"normal_prompt": normal_prompt, "finding_prompt": finding_prompt, "seeds": [int(s) for s in seeds],
               "region": f"pixels inside >= half the peak frequency of {n_masks} right/bilateral-effusion lesion masks",
               "dataset": p.dataset, "scale": p.scale})
write_json(effect, snakemake.output.effect)
fig, axes = plt.subplots(len(seeds), 3, figsize=(7.2, 2.4 * len(seeds)), squeeze=False)
vmax = max(1.0, float(np.abs(finding.astype(float) - normal).max()))
for r in range(len(seeds)):
    diff = finding[r].astype(float) - normal[r]
    for c, (img, title) in enumerate(((normal[r], "normal prompt"), (finding[r], "effusion prompt"),
                                      (diff, "effusion - normal"))):
        ax = axes[r, c]
        ax.imshow(img, cmap="gray" if c < 2 else "coolwarm", vmin=0 if c < 2 else -vmax, vmax=255 if c < 2 else vmax)
        if region.any():
            ax.contour(region, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_xticks([]); ax.set_yticks([])
        ax.set_title(f"{title}, seed {seeds[r]}", fontsize=7)
ratio = "n/a (no effusion region in this cohort)" if effect["ratio"] is None else f"{effect['ratio']:.2f}"
fig.suptitle(f"Text control: |difference| inside the cohort's effusion region (yellow) / outside = "
             f"{ratio} ({effect['n_pairs']} seed pairs)\nradiological convention: the patient's right is on the image's left",
             fontsize=8)
save(fig, snakemake.output.effusion)

# -- training curves
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, path, name in ((axes[0], snakemake.input.vae_summary, "VAE (MSE + KL)"),
                       (axes[1], snakemake.input.diffusion_summary, "diffusion (noise MSE)")):
    s = read_json(path)
    ax.plot(np.arange(1, len(s["train_loss"]) + 1), s["train_loss"], lw=0.6, alpha=0.6, label="train (per step)")
    if s["val_loss"]:
        steps, vals = zip(*s["val_loss"])
        ax.plot(steps, vals, "o-", ms=3, label=f"validation (best {s['best_val']:.4g})")
    ax.set_yscale("log"); ax.set_xlabel("optimizer step"); ax.set_title(name, fontsize=9); ax.legend(fontsize=7)
save(fig, snakemake.output.curves)
log.info("effusion region effect: %s", effect)
