"""Step: train a model entry's VAE (MSE + KL), restore its best-validation weights, measure its latent scale."""
from pathlib import Path

import torch

from medsynth.io import read_table, write_json
from medsynth.papers.choksi2025 import train_vae_stage
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
out_dir = Path(snakemake.output.config).parent
summary = train_vae_stage(read_table(snakemake.input.manifest), Path(snakemake.params.results),
                          snakemake.params.model, Path(snakemake.params.work), out_dir, snakemake.params.seed)
summary["model"] = snakemake.wildcards.model
write_json(summary, snakemake.output.summary)
log.info("VAE: %d steps, best val %.5f, latent scale %.4f", summary["steps"], summary["best_val"] or float("nan"),
         summary["scaling_factor"])
