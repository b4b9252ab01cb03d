"""Step: feature statistics of a dataset split's real images (the cached reference side of FID/KID)."""
import torch

from medsynth.io import read_table
from medsynth.metrics.generative import compute_reference, reference_paths, rule_evaluator
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
wc, p, s = snakemake.wildcards, snakemake.params, snakemake.params.settings
ev = rule_evaluator(wc.backbone, wc.resize, s, p.seed, p.cache, weights=snakemake.input.get("weights"),
                    card=snakemake.input.get("card"))
paths = reference_paths(read_table(snakemake.input.manifest), p.results, wc.split)
ref = compute_reference(ev, paths, snakemake.output[0], wc.dataset, wc.split, s["batch_size"])
log.info("%s/%s: %d images, backbone %s (weights sha256 %s), resize %s", wc.dataset, wc.split, ref.n,
         ev.info.backbone, ev.info.weights_sha256[:12], ev.resize_mode)
