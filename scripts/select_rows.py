"""Step: select a model entry's training rows (`rows:`: per-label counts, its own prompts; seeded) and record
which images were taken and why any label got fewer than asked."""
from medsynth.io import read_table, write_json, write_table
from medsynth.training.rows import select_rows
from medsynth.workflow import script_logging

log = script_logging(snakemake)
rows, record = select_rows(read_table(snakemake.input.manifest), dict(snakemake.params.spec), snakemake.params.seed)
record["model"] = snakemake.wildcards.model
write_table(rows, snakemake.output.rows)
write_json(record, snakemake.output.record)
log.info("%s: %s rows (train/val)", snakemake.wildcards.model, record["n_rows"])
for line in record["shortfalls"]:
    log.warning("fewer images than asked: %s", line)
