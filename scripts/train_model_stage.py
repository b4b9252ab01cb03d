"""Step: train one stage of a model entry through its family (medsynth.families), in this process or under
`accelerate launch` on a job with more than one GPU; write the stage's summary and its done-marker."""
from pathlib import Path

import torch

from medsynth.families import family_of
from medsynth.io import write_json
from medsynth.training.launch import run_stage
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
model_cfg, stage = dict(snakemake.params.model), snakemake.wildcards.stage
inputs = {s: Path(p).parent for s, p in snakemake.input.items() if s != "manifest"}
out = Path(snakemake.output.marker).parent
summary = run_stage(stage, model_cfg, Path(snakemake.input.manifest), Path(snakemake.params.results),
                    Path(snakemake.params.work), out, Path(snakemake.output.summary), snakemake.params.seed,
                    inputs=inputs, gpus=int(snakemake.resources.get("gpu", 0) or 0), log=log,
                    keep_checkpoints=snakemake.params.keep_checkpoints)
summary["model"] = snakemake.wildcards.model
write_json(summary, snakemake.output.summary)
write_json({"kind": family_of(model_cfg).kind, "stage": stage, "model": snakemake.wildcards.model,
            "steps": summary.get("steps")}, snakemake.output.marker)
log.info("%s stage %s: %s steps", family_of(model_cfg).kind, stage, summary.get("steps"))
