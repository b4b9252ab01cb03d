"""Step: siddiqui2023 counterfactual grids: a few source images (rows) and their edits at each strength (columns),
for diseased -> healthy counterfactuals and for disease induction (localised and zero-shot prompts)."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from medsynth.io import atomic_path, read_table
from medsynth.papers import siddiqui2023 as S
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p, inp = snakemake.params, snakemake.input
size, results = int(p.image_size), Path(p.results)


def grid(tables, out, title, n_rows=4):
    """tables: [(edits table, its folder)]; one row per (source image, prompt), first seed only."""
    rows = []
    for t, folder in tables:
        first = t[t["seed"] == t["seed"].min()]
        groups = list(first.groupby(["source_id", "prompt"], sort=False))[:n_rows]
        rows += [(g.sort_values("strength"), folder, prompt) for (_, prompt), g in groups]
    cols = max(len(g) for g, _, _ in rows) + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.7 * cols, 1.9 * len(rows)), squeeze=False)
    for ax_row, (g, folder, prompt) in zip(axes, rows):
        ax_row[0].imshow(S.read_gray(results / g["source_image"].iloc[0], size), cmap="gray", vmin=0, vmax=1)
        ax_row[0].set_title(f"source ({g['source_label'].iloc[0]})", fontsize=6)
        for ax, r in zip(ax_row[1:], g.to_dict("records")):
            ax.imshow(S.read_gray(folder / r["file"], size), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"'{prompt[:28]}'\nstrength {r['strength']:g}", fontsize=6)
        for ax in ax_row:
            ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def load(path):
    return read_table(path), Path(path).parent


grid([load(inp.counterfactual)], snakemake.output.counterfactual, "diseased -> healthy counterfactuals (SDEdit)")
grid([load(inp.induction), load(inp.zero_shot)], snakemake.output.induction,
     "disease induction from healthy images: localised prompts and zero-shot (unseen) prompts", n_rows=3)
