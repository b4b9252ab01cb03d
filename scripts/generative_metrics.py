"""Step: FID / KID / IS (or a domain Frechet distance) of a prompt set's samples against cached reference
statistics; one JSON of provenance records {metric: record}."""
from pathlib import Path

import torch

from medsynth.io import read_table, write_json
from medsynth.metrics.generative import evaluate_generated, generated_paths, rule_evaluator
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
wc, p, s = snakemake.wildcards, snakemake.params, snakemake.params.settings
ev = rule_evaluator(wc.backbone, wc.resize, s, p.seed, p.cache, weights=snakemake.input.get("weights"),
                    card=snakemake.input.get("card"))
paths = generated_paths(read_table(snakemake.input.samples), Path(snakemake.input.samples).parent, wc.split)
records = evaluate_generated(ev, snakemake.input.reference, paths, s["batch_size"], s["kid_subsets"],
                             s["kid_subset_size"], extra={"model": wc.model, "promptset": wc.promptset,
                                                          "split": wc.split, "scale": p.scale},
                             declared=p.declared)
write_json(records, snakemake.output[0])
log.info("%s/%s %s vs %s [%s, %s]: %s", wc.model, wc.promptset, wc.split, wc.refsplit, ev.info.backbone,
         ev.resize_mode, {k: round(r["value"], 4) for k, r in records.items()})
