"""Step: paired, no-reference and diversity image-quality metrics of a prompt set's samples."""
from pathlib import Path

from medsynth.io import read_table, write_json
from medsynth.metrics.generative import select_split
from medsynth.metrics.provenance import code_version
from medsynth.metrics.quality import image_quality
from medsynth.workflow import script_logging

log = script_logging(snakemake)
wc, p = snakemake.wildcards, snakemake.params
samples = select_split(read_table(snakemake.input.samples), wc.split, "the samples table").reset_index(drop=True)
out = image_quality(samples, Path(snakemake.input.samples).parent, p.results, p.niqe_params)
out.update({"model": wc.model, "promptset": wc.promptset, "split": wc.split, "scale": p.scale, "seed": p.seed,
            "code_version": code_version()})
write_json(out, snakemake.output[0])
log.info("%s/%s %s: %s", wc.model, wc.promptset, wc.split,
         {k: round(v["mean"], 4) for k, v in out.items() if isinstance(v, dict) and v.get("mean") is not None})
