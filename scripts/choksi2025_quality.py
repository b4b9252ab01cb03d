"""Step: the poster's image-quality row, measured on generated images of held-out reports (paired with the real
image of each report) and FID with the configured backbone (labelled when it is a stand-in)."""
from pathlib import Path

import numpy as np
from PIL import Image

from medsynth.io import read_table, write_json
from medsynth.metrics.fid import InceptionEvaluator
from medsynth.papers.choksi2025 import PAPER, ROW, quality_cells, quality_values
from medsynth.report.cells import make_cell
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
samples = read_table(snakemake.input.samples)
held = samples[samples["split"].isin(p.eval_splits)].reset_index(drop=True)
if held.empty:
    raise ValueError(f"no generated images for splits {p.eval_splits}")
folder, results = Path(snakemake.input.samples).parent, Path(p.results)
size = p.image_size


def gray(path):
    img = Image.open(path).convert("L")
    return np.asarray(img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC))


gen = np.stack([gray(folder / f) for f in held["file"]])
real = np.stack([gray(results / f) for f in held["source_image"]])
prov = {"dataset": p.dataset, "split": "+".join(p.eval_splits), "model": p.model, "scale": p.scale, "seed": p.seed,
        "ddim_steps": int(held["steps"].iloc[0]), "guidance_scale": float(held["guidance_scale"].iloc[0]),
        "resolution": f"{size}x{size}"}
cells = quality_cells(quality_values(gen, real), {**prov, "n": len(held), "method": ""})

fid_cfg = p.fid
ev = InceptionEvaluator.create(backbone=fid_cfg["backbone"], weights=fid_cfg.get("weights"), dims=fid_cfg["dims"],
                               seed=p.seed, cache_dir=p.cache)
label = "" if fid_cfg["backbone"] == "inception-fid" else " (STAND-IN backbone: not comparable to the published FID)"
method = f"Frechet distance, generated vs real held-out images{label}"
if len(held) < 2:  # a covariance needs two images: record why there is no number rather than invent one
    fid, method = None, f"not computed: {len(held)} held-out image(s), FID needs at least 2 ({method})"
    log.warning("FID skipped: only %d held-out image(s)", len(held))
else:
    fid = ev.fid(ev.stats(gen[i:i + 16] for i in range(0, len(gen), 16)),
                 ev.stats(real[i:i + 16] for i in range(0, len(real), 16)))
cells.append(make_cell(PAPER, "quality", ROW, "FID", fid, provenance={
    **prov, "n": len(held), "method": method,
    "backbone": ev.info.backbone, "weights_sha256": ev.info.weights_sha256, "dims": fid_cfg["dims"],
    "resize": ev.info.resize_mode}))
if p.scale == "paper":  # a Δ against the poster means something only for the paper-scale run
    cells = [{**c, "reproduces": "Published model"} for c in cells]
write_json(cells, snakemake.output.cells)
log.info("quality: %s", {c["column"]: c["value"] for c in cells})
