"""Step (chen2024 Table 1): FID (generic generative_metrics record) and NIQE (generic image_quality record) of the
images generated from the held-out reports."""
from pathlib import Path

from medsynth.io import read_json, write_json
from medsynth.papers.chen2024 import table1_cells
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
prov = {"dataset": p.dataset, "split": p.split, "model": p.model, "scale": p.scale, "seed": p.seed,
        "resolution": f"{p.image_size}x{p.image_size}", "llm": p.llm, "sampler": "autoregressive image tokens",
        "fid_source": str(Path(snakemake.input.fid).name)}
cells = table1_cells(read_json(snakemake.input.fid), read_json(snakemake.input.quality), prov)
write_json(cells, snakemake.output.cells)
log.info("table 1: %s", {c["column"]: c["value"] for c in cells})
