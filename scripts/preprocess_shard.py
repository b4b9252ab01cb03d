"""Step: preprocess one shard of a dataset (images, volumes or table rows); every row is output or rejected."""
from pathlib import Path

from medsynth.io import read_table, write_table
from medsynth.preprocess import process_shard
from medsynth.sharding import SHARD_MANIFEST, SHARD_REJECTS
from medsynth.workflow import script_logging, shard_slice

log = script_logging(snakemake)
p = snakemake.params
rows = read_table(snakemake.input[0]).iloc[shard_slice(snakemake.wildcards.shard, p.dataset["shard_size"])]
out_dir = Path(snakemake.output[0])
out_dir.mkdir(parents=True, exist_ok=True)
done, rejects = process_shard(p.kind, rows, p.dataset, out_dir, Path(p.results))
for reason, n in rejects["reason"].value_counts().items():
    log.info("rejected %d: %s", n, reason)
log.info("shard %s: %d in, %d out rows, %d rejected", snakemake.wildcards.shard, len(rows), len(done), len(rejects))
write_table(rejects, out_dir / SHARD_REJECTS)
write_table(done, out_dir / SHARD_MANIFEST)
