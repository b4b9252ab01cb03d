"""Step: merge the phantom shards into cohort.parquet and write the label prevalence table."""
from pathlib import Path

from medsynth.io import write_table
from medsynth.phantom.cohort import merge_shards, prevalence
from medsynth.workflow import script_logging

log = script_logging(snakemake)
out = Path(snakemake.output.table)
table = merge_shards([Path(p) for p in snakemake.input], out.parent)
write_table(table, out)
prev = prevalence(table)
write_table(prev, snakemake.output.prevalence)
log.info("phantom cohort: %d patients; %s", len(table),
         ", ".join(f"{r.label}={r.count}" for r in prev.itertuples() if r.kind == "finding"))
