"""Step: generate one shard of the phantom cohort (patients shard*shard_size ..) into the shard folder."""
from pathlib import Path

from medsynth.phantom.cohort import generate_shard
from medsynth.workflow import script_logging

log = script_logging(snakemake)
shard = snakemake.wildcards.shard
table = generate_shard(shard, dict(snakemake.params.phantom), int(snakemake.params.seed), Path(snakemake.output[0]))
log.info("phantom shard %s: %d patients, %d with findings", shard, len(table),
         int((table["finding_list"] != "no_finding").sum()))
