"""Step: the poster's image-quality row, measured on generated images of held-out reports (paired with the real
image of each report); the FID cell is the generic `generative_metrics` rule's record (cached reference statistics
shared with every model and paper), labelled when its backbone is a stand-in."""
from pathlib import Path

import numpy as np
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.io import read_json, read_table, write_json
from medsynth.papers.choksi2025 import fid_cell, quality_cells, quality_values
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
samples = read_table(snakemake.input.samples)
held = samples[samples["split"].isin(p.eval_splits)].reset_index(drop=True)
if held.empty:
    raise MedsynthError(f"no generated images for splits {p.eval_splits}")
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

fid = fid_cell(read_json(snakemake.input.fid), prov, source=Path(snakemake.input.fid).relative_to(results))
if fid["provenance"]["n"] != len(held):
    raise MedsynthError(f"{snakemake.input.fid}: FID over {fid['provenance']['n']} generated images, the quality "
                        f"row over {len(held)}: the two must use the same held-out reports")
cells.append(fid)
if p.scale == "paper":  # a Δ against the poster means something only for the paper-scale run
    cells = [{**c, "reproduces": "Published model"} for c in cells]
write_json(cells, snakemake.output.cells)
log.info("quality: %s", {c["column"]: c["value"] for c in cells})
