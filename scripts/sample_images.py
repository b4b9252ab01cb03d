"""Step: sample one prompt set from a trained model entry through its family (medsynth.families: ldm2d is
classifier-free-guided DDIM unless the prompt set names another sampler; 3D and token families write their own
outputs): one file per row + samples.csv."""
from pathlib import Path

import torch

from medsynth.devices import job_device
from medsynth.families import family_of
from medsynth.io import read_table, write_table
from medsynth.sampling.prompt_sets import resolve_prompt_set
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
spec = snakemake.params.spec
fam = family_of(snakemake.params.model)
table = resolve_prompt_set(spec, read_table(snakemake.input.manifest) if spec.get("splits") else None)
device = job_device(snakemake.resources.get("gpu", 0))
model = fam.load(snakemake.params.folder, device)
table.insert(0, "file", [f"{i:05d}.{fam.outputs}" for i in range(len(table))])
table = fam.sample(model, table, Path(snakemake.output.table).parent, spec, Path(snakemake.params.results), device)
write_table(table, snakemake.output.table)
log.info("%s: %d outputs from %d prompts (%s)", fam.kind, len(table), table["prompt"].nunique(), device)
