"""Step: slice-wise or patch-wise FID / KID between two volume sets (xing2024's 3D domain feature distances); one JSON
of provenance records {metric: record}."""
import torch

from medsynth.io import write_json
from medsynth.metrics import volumes as mv
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
wc, p, inp = snakemake.wildcards, snakemake.params, snakemake.input
ev = mv.volume_evaluator(wc.mode, wc.backbone, p.settings, p.seed, p.cache, weights=inp.get("weights"))
records = mv.volume_records(ev, wc.mode, mv.set_paths(inp.a, wc.asplit), mv.set_paths(inp.b, wc.bsplit), p.settings,
                            a_info=mv.set_info(inp.a, wc.a, wc.asplit), b_info=mv.set_info(inp.b, wc.b, wc.bsplit),
                            extra={"scale": p.scale},
                            a_cache=p.cache if mv.is_dataset_table(inp.a) else None)  # real side: once per table
write_json(records, snakemake.output[0])
log.info("%s/%s vs %s/%s, %s-wise [%s]: %s", wc.a, wc.asplit, wc.b, wc.bsplit, wc.mode, ev.info.backbone,
         {k: round(r["value"], 4) for k, r in records.items()})
