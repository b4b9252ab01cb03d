"""Step: siddiqui2023 VA maps scored against ground truth. Every healthy counterfactual of a lesion-bearing image
gives |counterfactual - original| (and its lung-masked variant); the null edit of the same image, strength and seed
gives the floor; the project's classifier's gradient saliency is the baseline. Each map is scored against the
phantom's lesion mask of each finding present (pixel AUROC, NCC) -> va_scores.csv, the table cells, a figure."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from medsynth.attribution import difference_map
from medsynth.classifier.train import load_classifier
from medsynth.io import atomic_path, read_table, write_json, write_table
from medsynth.papers import siddiqui2023 as S
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p, inp = snakemake.params, snakemake.input
va, size, results = p.study.get("va") or {}, int(p.image_size), Path(p.results)
sigma = float(va.get("sigma", 1.0))
region = None
if hasattr(inp, "lungs"):
    lungs = read_table(inp.lungs)
    masks = sorted(m for m in lungs["mask"] if isinstance(m, str) and m)[: int(va.get("lung_atlas_max", 500))]
    region = S.lung_region([results / m for m in masks], size,
                           float(va.get("lung_threshold", 0.3)))
edits, null = read_table(inp.edits), read_table(inp.null)
edit_dir, null_dir = Path(inp.edits).parent, Path(inp.null).parent
classifier = load_classifier(Path(inp.weights), Path(inp.card))
findings = va.get("findings", list(S.FINDING_BITS))   # []: a dataset without lesion masks
scores = S.va_scores(edits, edit_dir, null, null_dir, results, size, findings, sigma, region, classifier)
write_table(scores, snakemake.output.scores)
prov = {"dataset": p.dataset, "scale": p.scale, "seed": p.seed, "model": p.model, "sigma_px": sigma,
        "image_size": size, "null_prompts": sorted(null["prompt"].unique()),
        "counterfactual_prompts": sorted(edits["prompt"].unique()),
        "classifier": {"arch": classifier[1]["arch"], "weights_sha256": classifier[1].get("weights_sha256")},
        "lung_region": "atlas of real lung masks (dataset " + str(va.get("lung_masks")) + ")" if region is not None
        else "none"}
write_json(S.va_cells(scores, prov, classifier[1]), snakemake.output.cells)
if not scores.empty:
    summary = scores.groupby(["finding", "arm"])[["auroc", "ncc"]].mean()
    log.info("VA localisation (mean over images, seeds, strengths):\n%s", summary.to_string())

# figure: a few lesion-bearing images, their counterfactual VA map (table strength) over the image, lesion outline
strength = float(p.study["table_strength"])
at = edits[np.isclose(edits["strength"].astype(float), strength)]
shown = [r for r in at.drop_duplicates("source_id").to_dict("records") if S.findings_of(r, findings)][:4]
fig, axes = plt.subplots(len(shown) or 1, 4, figsize=(9, 2.4 * max(len(shown), 1)), squeeze=False)
for ax_row, r in zip(axes, shown):
    f = S.findings_of(r, findings)[0]
    orig = S.read_gray(results / r["source_image"], size)
    cf = S.read_gray(edit_dir / r["file"], size)
    gt = S.lesion_mask(results / r["mask"], f, size)
    nf = null[(null["source_id"] == r["source_id"]) & np.isclose(null["strength"].astype(float), strength)
              & (null["seed"] == r["seed"])]
    maps = [("counterfactual", cf, None), ("VA |cf - orig|" + (", lung-masked" if region is not None else ""), orig,
                                         difference_map(orig, cf, sigma, region))]
    if len(nf):
        maps.append(("null edit VA" + (", lung-masked" if region is not None else ""), orig,
                     difference_map(orig, S.read_gray(null_dir / nf["file"].iloc[0], size), sigma, region)))
    for ax, (title, img, m) in zip(ax_row[1:], maps):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        if m is not None:
            ax.imshow(m, cmap="jet", alpha=0.45)
        ax.contour(gt, levels=[0.5], colors="lime", linewidths=0.8)
        ax.set_title(title, fontsize=7)
    ax_row[0].imshow(orig, cmap="gray", vmin=0, vmax=1)
    ax_row[0].contour(gt, levels=[0.5], colors="lime", linewidths=0.8)
    ax_row[0].set_title(f"original ({f})", fontsize=7)
    for ax in ax_row:
        ax.axis("off")
fig.suptitle(f"VA maps (strength {strength:g}, sigma {sigma:g} px); green: the true lesion outline", fontsize=8)
fig.tight_layout()
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, dpi=110, format="png")
