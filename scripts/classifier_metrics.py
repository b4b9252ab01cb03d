"""Step: a classifier (torchxrayvision's or the project's own) scores a prompt set's generated images for their
prompts' labels; per-label metrics, the same on the real source images, feature cosine similarity."""
from pathlib import Path

import torch

from medsynth.io import read_table, write_json
from medsynth.metrics.generative import select_split
from medsynth.metrics.provenance import code_version
from medsynth.metrics.scoring import load_scorer, score_samples
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
wc, p = snakemake.wildcards, snakemake.params
samples = select_split(read_table(snakemake.input.samples), wc.split, "the samples table").reset_index(drop=True)
scorer = load_scorer(wc.scorer, snakemake.input.get("weights"), snakemake.input.get("card"))
out = score_samples(scorer, samples, Path(snakemake.input.samples).parent, p.results)
out.update({"model": wc.model, "promptset": wc.promptset, "split": wc.split, "scale": p.scale, "seed": p.seed,
            "code_version": code_version(),
            "definition": "scores of each generated image for its prompting report's labels (CheXpert: uncertain -> "
                          f"{out['uncertain']}, missing -> negative); positive at >= {out['threshold']}"})
write_json(out, snakemake.output[0])
log.info("%s/%s %s scored by %s: macro AUC generated %s, real %s", wc.model, wc.promptset, wc.split, scorer.backbone,
         out["generated"]["macro"]["auc"], out.get("real", {}).get("macro", {}).get("auc"))
