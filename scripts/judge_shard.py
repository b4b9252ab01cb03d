"""Step: render one shard of the judge's phantom cohort (balanced findings, preprocessed like the judged dataset)."""
from pathlib import Path

from medsynth.phantom.judge_cohort import render_shard
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
table = render_shard(snakemake.wildcards.shard, dict(p.judge), dict(p.phantom), dict(p.preprocess),
                     Path(snakemake.output[0]))
log.info("judge shard %s: %d patients, %d normal", snakemake.wildcards.shard, len(table),
         int((table["finding_list"] == "no_finding").sum()))
