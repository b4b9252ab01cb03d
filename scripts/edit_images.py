"""Step: edit real images with a trained model entry through its family (SDEdit / img2img for ldm2d): one edit set
(config `models: <m>: edit_sets: <editset>:`, medsynth.sampling.edit_sets) -> one PNG per (source image, prompt,
strength, seed) + edits.csv naming each edit's source image, prompt, strength and seed."""
from pathlib import Path

import torch

from medsynth.families import family_of
from medsynth.io import read_table, write_table
from medsynth.sampling.edit_sets import resolve_edit_set
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
spec = snakemake.params.spec
fam = family_of(snakemake.params.model)
table = resolve_edit_set(spec, read_table(snakemake.input.manifest), snakemake.params.seed)
device = "cuda" if torch.cuda.is_available() and int(snakemake.resources.get("gpu", 0) or 0) > 0 else "cpu"
model = fam.load(snakemake.params.folder, device)
table.insert(0, "file", [f"{i:05d}.png" for i in range(len(table))])
table = fam.edit(model, table, Path(snakemake.output.table).parent, spec, Path(snakemake.params.results), device)
write_table(table, snakemake.output.table)
log.info("%s: %d edits of %d source images, %d prompt(s), strengths %s (%s)", fam.kind, len(table),
         table["source_id"].nunique(), table["prompt"].nunique(), sorted(table["strength"].unique()), device)
