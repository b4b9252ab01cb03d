"""Step: xing2024 Figure 4. Attribute-toggle heatmaps of a text-conditioned 3D model (same mask and seed, one
attribute changed in the text), scored against the phantom's emphysema regions, with a null arm (medsynth.attribute_toggle)."""
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medsynth import attribute_toggle as at  # noqa: E402
from medsynth.errors import MedsynthError  # noqa: E402
from medsynth.families import family_of  # noqa: E402
from medsynth.io import atomic_path, read_table, write_json  # noqa: E402
from medsynth.papers.xing2024 import heatmap_cells  # noqa: E402
from medsynth.sampling.prompt_sets import resolve_prompt_set  # noqa: E402
from medsynth.workflow import script_logging  # noqa: E402

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
spec = p.spec
results, work = Path(p.results), Path(snakemake.output.scores).parent / "toggle"
manifest = read_table(snakemake.input.manifest)
candidates = resolve_prompt_set({"splits": spec.get("splits", ["test"])}, manifest)
if "lesion_source" in candidates and candidates["lesion_source"].map(lambda s: isinstance(s, str) and s != "").any():
    # Score only crops whose lungs hold emphysema (the smoking effect's ground truth); the null arm uses the same crops.
    rows, regions, lungs, scanned = at.region_crops(candidates, results, p.spacing, p.crop, at.EMPHYSEMA_BIT,
                                                    spec.get("limit"))
    log.info("%d of %d scanned crops (splits %s) have emphysema inside the lungs", len(rows), scanned,
             spec.get("splits", ["test"]))
    if rows.empty:
        raise MedsynthError(f"xing2024 heatmaps: none of the {scanned} crops of splits {spec.get('splits', ['test'])} "
                            "has emphysema inside the lungs; widen xing2024.heatmap.splits or the phantom cohort")
else:  # real data (AIIB23): no lesion maps, so heatmaps only, as in the paper; the score cells stay empty
    rows = candidates.head(int(spec["limit"])) if spec.get("limit") else candidates
    regions, lungs, scanned = None, None, len(rows)
    log.info("no lesion maps in %s: %d crops, heatmaps unscored", p.dataset, len(rows))
fam = family_of(p.model_cfg)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = fam.load(p.folder, device)
seeds = spec.get("seeds", [0])
arms = {"smoking": spec.get("attribute") or {"column": "smoking_status", "values": ["never", "current"]},
        "null (sex)": spec.get("null_attribute") or {"column": "sex", "values": ["F", "M"]}}
sample_spec = {"steps": int(spec.get("steps", 25)), "sampler": "ddim", "batch_size": 4}


def generate(table, name):
    out = work / name
    fam.sample(model, table, out, sample_spec, results, device)
    return np.stack([np.load(out / f, allow_pickle=False)["image"][0].astype(np.float32) for f in table["file"]])


scores, heat_maps = {"seeds": list(seeds), "crops_scanned": scanned, "arms": {}}, {}
for arm, toggle in arms.items():
    a, b = at.toggle_tables(rows, toggle["column"], toggle["values"], p.rules, seeds)
    heat = np.abs(generate(b, f"{toggle['column']}_b") - generate(a, f"{toggle['column']}_a"))
    units = []
    for k, h in enumerate(heat):
        i = k % len(rows)
        units.append(at.region_score(h, regions[i], lungs[i]) if regions else None)
    shares = [u[0] for u in units if u]
    enrich = [u[0] - u[1] for u in units if u]
    m, se, n = at.mean_se(enrich)
    ms, mse, _ = at.mean_se(shares)
    vs, vse, _ = at.mean_se([u[1] for u in units if u])
    scores["arms"][arm] = {"toggle": f"{toggle['column']}: {toggle['values'][0]} -> {toggle['values'][1]}",
                           "n": n, "n_crops": len(rows), "enrichment": m, "enrichment_se": se, "mass_share": ms,
                           "mass_share_se": mse, "volume_share": vs, "volume_share_se": vse,
                           "mean_abs_diff": float(heat.mean())}
    heat_maps[arm] = heat
write_json(scores, snakemake.output.scores)
write_json(heatmap_cells(scores, p.dataset, p.scale, p.model), snakemake.output.cells)

# Figure: for the first 4 scored crops, the mid axial slice of each arm's heatmap, emphysema outlined.
show = list(range(min(4, len(rows))))
fig, axes = plt.subplots(2, len(show), figsize=(2.6 * len(show), 5.4), squeeze=False)
vmax = max(float(h.max()) for h in heat_maps.values()) or 1.0
for r, (arm, heat) in enumerate(heat_maps.items()):
    for c, i in enumerate(show):
        z = heat.shape[-1] // 2
        ax = axes[r][c]
        ax.imshow(heat[i][:, :, z].T, cmap="magma", vmin=0, vmax=vmax, origin="lower")
        if regions:
            ax.contour(regions[i][:, :, z].T, levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"{arm}\ncrop {c + 1}", fontsize=8)
        ax.axis("off")
fig.suptitle(f"{p.model}: mean |difference| per voxel (cyan: phantom emphysema)", fontsize=9)
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
for arm, s in scores["arms"].items():
    log.info("%s: enrichment %s +- %s (n=%d)", arm, s["enrichment"], s["enrichment_se"], s["n"])
