"""Step: choksi2025 figures: sample grid of the poster's six prompts, the effusion text-control figure and its
measurement (K normal reports vs the same reports with a right pleural effusion written in vs the same reports
reworded without a finding, same seeds; signed difference in the cohort's effusion region vs its mirror image,
against the null arm and the real cohort's own contrast), training curves."""
import textwrap
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from medsynth.io import read_json, read_table, write_figure, write_json
from medsynth.papers.text_control import (cohort_reference, finding_region, region_contrast, seed_spread,
                                          split_arms, verdict)
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
# the effusion prompt set: reports with this phrase are the finding arm (config models.<model>.prompt_sets.effusion)
FINDING, SIDE, SEVERITIES, FINDING_PHRASE = "effusion", "right", ("moderate", "large"), "right pleural effusion"


def save(fig, path):
    fig.tight_layout()
    write_figure(fig, path)


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

# -- effusion text control: K normal reports, the same K with a large right pleural effusion written in, the same K
# reworded at the same places without a finding (null arm), all with the same seeds (medsynth.papers.text_control)
table, imgs = images(snakemake.input.effusion)
normal_prompts, finding_prompts, null_prompts = split_arms(table["prompt"], FINDING_PHRASE)
seeds = sorted(table["seed"].unique())
arm = lambda prompts: np.stack([np.stack([imgs[(table["prompt"] == q) & (table["seed"] == s)][0] for s in seeds])
                                for q in prompts]).astype(np.float64)   # (K, S, H, W)
normal, finding, null = arm(normal_prompts), arm(finding_prompts), arm(null_prompts)
size = normal.shape[-1]
manifest = read_table(snakemake.input.manifest)
region, control, n_masks = finding_region(manifest, p.results, size, FINDING, SIDE, SEVERITIES)
effect = {"dataset": p.dataset, "scale": p.scale, "finding": f"{'/'.join(SEVERITIES)} {SIDE} pleural effusion "
          f"(prompted: '{FINDING_PHRASE}')", "n_prompts_per_arm": len(finding_prompts),
          "seeds": [int(s) for s in seeds],
          "n_samples_per_arm": int(finding.shape[0] * finding.shape[1]), "steps": int(table["steps"][0]),
          "guidance_scale": float(table["guidance_scale"][0]),
          "mean_abs_diff": {"finding_vs_normal": float(np.abs(finding - normal).mean()),
                            "null_vs_normal": float(np.abs(null - normal).mean())},
          "seed_spread": seed_spread(normal, region) if len(seeds) > 1 else None,
          "prompts": {"normal": normal_prompts, "finding": finding_prompts, "null": null_prompts}}
reference = None
if region is None:  # a tiny cohort may hold no such effusion: say so instead of drawing a made-up region
    effect.update({"localised": None, "reason": f"no {SIDE}-sided {'/'.join(SEVERITIES)} effusion with a mask "
                                                "in the cohort: no region to measure"})
else:
    effect["region"] = {"definition": f"pixels where >= half the peak fraction of {n_masks} {SIDE}/bilateral "
                                      f"{'/'.join(SEVERITIES)} effusion masks (effusion bit; bilateral: {SIDE} half) "
                                      "lie; "
                                      "radiological convention: patient's right = image left",
                        "control": "the region mirrored left-right (pixels in both dropped)",
                        "fraction": float(region.mean()), "n_masks": int(n_masks)}
    effect["effect"] = region_contrast(normal, finding, region, control)
    effect["null"] = region_contrast(normal, null, region, control)
    reference = cohort_reference(manifest, p.results, size, region, control, FINDING, SIDE, SEVERITIES)
    if reference is not None:
        effect["cohort_reference"] = {k: v for k, v in reference.items() if k != "diff_map"}
    effect.update(verdict(effect["effect"], effect["null"], sign=+1))
write_json(effect, snakemake.output.effect)

fig, axes = plt.subplots(3, 3, figsize=(8.4, 8.4))
maps = [normal.mean((0, 1)), finding.mean((0, 1)), (finding - normal).mean((0, 1)), (null - normal).mean((0, 1))]
if reference is not None:
    maps.append(reference["diff_map"])
vmax = max(5.0, float(np.percentile(np.abs(np.stack(maps[2:])), 99)))   # one scale for every difference map
panels = [(normal[0, 0], f"normal report 1, seed {seeds[0]}", "gray"),
          (finding[0, 0], f"+ large right effusion, seed {seeds[0]}", "gray"),
          (finding[0, 0] - normal[0, 0], "difference, one pair", "diff"),
          (maps[0], f"mean of normal arm ({effect['n_samples_per_arm']})", "gray"),
          (maps[1], f"mean of effusion arm ({effect['n_samples_per_arm']})", "gray"),
          (maps[2], "mean difference: effusion - normal", "diff"),
          (maps[3], "null: normal reworded - normal", "diff"),
          (reference["diff_map"] if reference is not None else None,
           f"real: right mod/large effusion ({reference['n_finding'] if reference else 0}) - normal", "diff")]
for ax, (img, title, kind) in zip(axes.flat, panels):
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    if img is None:
        ax.text(0.5, 0.5, "no such patients\nin the cohort", ha="center", va="center", fontsize=7)
        continue
    ax.imshow(img, cmap="gray" if kind == "gray" else "coolwarm", vmin=0 if kind == "gray" else -vmax,
              vmax=255 if kind == "gray" else vmax)
    if region is not None:
        ax.contour(region, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.contour(control, levels=[0.5], colors="cyan", linewidths=0.8, linestyles="dashed")
ax = axes[2, 2]
if region is not None:
    for i, name in enumerate(("effect", "null")):
        vals, r = np.asarray(effect[name]["per_prompt"]), effect[name]
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(vals))
        ax.plot(i + jitter, vals, "o", ms=3, alpha=0.7)
        if r["contrast_se"] is not None:
            ax.errorbar(i + 0.3, r["contrast"], yerr=2 * r["contrast_se"], fmt="s", color="k", ms=4)
    if reference is not None:
        ax.axhline(reference["contrast"], color="green", lw=1, label=f"real cohort {reference['contrast']:.1f}")
        ax.legend(fontsize=6, loc="best")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks([0, 1]); ax.set_xticklabels(["effusion\n- normal", "reworded\n- normal"], fontsize=7)
    ax.set_ylabel("region - control (8-bit levels)", fontsize=7); ax.tick_params(labelsize=6)
    ax.set_title(f"per report (mean of {len(seeds)} seeds), mean +- 2 SE", fontsize=7)
    e, n = effect["effect"], effect["null"]
    verdict_text = {True: "localised", False: "NOT localised", None: "undetermined"}[effect["localised"]]
    verdict_text += (f", z {effect['z_vs_null']:.2f} vs the rewording, paired by report"
                     if effect.get("z_vs_null") is not None else "")
    head = (f"Text control ({verdict_text}): region (yellow) - control (cyan, mirrored) difference "
            f"{e['contrast']:+.1f} +- {e['contrast_se'] or float('nan'):.1f} SE for the effusion edit, "
            f"{n['contrast']:+.1f} +- {n['contrast_se'] or float('nan'):.1f} for the null (rewording);\nreal cohort "
            f"{effect.get('cohort_reference', {}).get('contrast', float('nan')):+.1f}; "
            f"seed-to-seed SD {(effect['seed_spread'] or {}).get('region', float('nan')):.1f} in the region (real "
            f"normal patients {((reference or {}).get('between_patient_sd') or {}).get('region', float('nan')):.1f}) "
            f"({effect['n_prompts_per_arm']} reports x {len(seeds)} seeds per arm). "
            "Patient's right = image left.\nBoth edits also change the rest of the image: mean |difference| "
            f"{e['mean_abs_diff']:.1f} (effusion edit), {n['mean_abs_diff']:.1f} (rewording), 8-bit levels.")
else:
    ax.set_axis_off()
    head = f"Text control: {effect['reason']}"
fig.suptitle(head, fontsize=7)
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
log.info("effusion text control: %s", {k: v for k, v in effect.items() if k != "prompts"})
