"""Step: train a from-scratch model entry's VAE (MSE + KL), restore its best-validation weights, measure its latent
scale; on a job with more than one GPU through `accelerate launch` (medsynth.training.launch)."""
from pathlib import Path

import torch

from medsynth.io import write_json
from medsynth.training.launch import run_stage
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
summary = run_stage("vae", dict(snakemake.params.model), Path(snakemake.input.manifest), Path(snakemake.params.results),
                    Path(snakemake.params.work), Path(snakemake.output.config).parent, Path(snakemake.output.summary),
                    snakemake.params.seed, gpus=int(snakemake.resources.get("gpu", 0) or 0), log=log,
                    keep_checkpoints=snakemake.params.keep_checkpoints)
summary["model"] = snakemake.wildcards.model
write_json(summary, snakemake.output.summary)
log.info("VAE: %d steps on %d process(es), best val %.5f, latent scale %.4f", summary["steps"],
         summary.get("processes", 1), summary["best_val"] or float("nan"), summary["scaling_factor"])
