"""Step: merge a dataset's shards; fail if any input row is neither output nor rejected."""
from pathlib import Path

from medsynth.io import read_table, write_json, write_table
from medsynth.sharding import merge_shards
from medsynth.workflow import script_logging

log = script_logging(snakemake)
raw = read_table(snakemake.input.manifest)
out, rejects, summary = merge_shards(raw, [Path(d) for d in snakemake.input.shards])
summary["dataset"] = snakemake.wildcards.dataset
log.info("%s", summary)
write_table(out, snakemake.output.manifest)
write_table(rejects, snakemake.output.rejects)
write_json(summary, snakemake.output.summary)
