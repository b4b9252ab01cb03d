"""Step: phantom cohort figures: an overview (one patient per finding) and, beside it, a contact sheet per finding."""
from pathlib import Path

from medsynth.io import read_table
from medsynth.phantom.figures import contact_sheets, overview
from medsynth.workflow import script_logging

log = script_logging(snakemake)
table_path = Path(snakemake.input.table)
table = read_table(table_path)
out = Path(snakemake.output.overview)
overview(table, table_path.parent, out)
sheets = contact_sheets(table, table_path.parent, Path(snakemake.output.sheets))
log.info("phantom figures: %s and %d contact sheets", out.name, len(sheets))
