"""Step: train a model entry's diffusion stage (from scratch on its trained VAE, or from a Stable Diffusion
checkpoint with the entry's strategy) and save it as a diffusers pipeline folder (safetensors); on a job with more
than one GPU through `accelerate launch` (medsynth.training.launch)."""
from pathlib import Path

import torch

from medsynth.io import write_json
from medsynth.training.launch import run_stage
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
vae = snakemake.input.get("vae")  # absent for a pretrained entry (its checkpoint brings the VAE)
summary = run_stage("diffusion", dict(snakemake.params.model), Path(snakemake.input.manifest),
                    Path(snakemake.params.results), Path(snakemake.params.work),
                    Path(snakemake.output.unet).parent.parent, Path(snakemake.output.summary), snakemake.params.seed,
                    inputs={"vae": Path(vae).parent} if vae else None, gpus=int(snakemake.resources.get("gpu", 0) or 0), log=log,
                    keep_checkpoints=snakemake.params.keep_checkpoints)
summary["model"] = snakemake.wildcards.model
write_json(summary, snakemake.output.summary)
log.info("diffusion (%s): %d steps on %d process(es), best val %.5f, null-prompt fraction %.3f",
         summary["strategy"], summary["steps"], summary.get("processes", 1), summary["best_val"] or float("nan"),
         summary["null_prompt_fraction"])
