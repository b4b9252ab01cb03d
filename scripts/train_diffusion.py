"""Step: train a model entry's latent-diffusion U-Net (+ text projection) on the frozen trained VAE; save the
pipeline's components (vae/, unet/, text_encoder/, tokenizer/, scheduler/) with safetensors weights."""
from pathlib import Path

import torch

from medsynth.io import read_table, write_json
from medsynth.papers.choksi2025 import train_diffusion_stage
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
summary = train_diffusion_stage(read_table(snakemake.input.manifest), Path(snakemake.params.results),
                                snakemake.params.model, Path(snakemake.input.vae).parent,
                                Path(snakemake.params.work), Path(snakemake.output.unet).parent.parent,
                                snakemake.params.seed)
summary["model"] = snakemake.wildcards.model
write_json(summary, snakemake.output.summary)
log.info("diffusion: %d steps, best val %.5f, null-prompt fraction %.3f", summary["steps"],
         summary["best_val"] or float("nan"), summary["null_prompt_fraction"])
