"""Step: merge the judge cohort's shards into its manifest; positives per label and split."""
from pathlib import Path

from medsynth.io import write_table
from medsynth.phantom.judge_cohort import label_counts, merge_shards
from medsynth.workflow import script_logging

log = script_logging(snakemake)
out = Path(snakemake.output.manifest)
table = merge_shards([Path(p) for p in snakemake.input], out.parent)
write_table(table, out)
counts = label_counts(table)
write_table(counts, snakemake.output.counts)
log.info("judge cohort: %d patients (%s); test positives: %s", len(table), table["split"].value_counts().to_dict(),
         {r.label: r.test for r in counts.itertuples() if r.test})
