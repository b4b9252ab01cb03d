"""Step: xing2024 Table 1 cells of one model entry from its volume_metrics records (slice- and patch-wise)."""
from pathlib import Path

from medsynth.io import read_json, write_json
from medsynth.papers.xing2024 import table1_cells
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
sources = {k: str(Path(getattr(snakemake.input, k)).relative_to(p.results)) for k in ("slice", "patch")}
cells = table1_cells(p.row, read_json(snakemake.input.slice), read_json(snakemake.input.patch), p.dataset, p.scale,
                     p.model, sources)
write_json(cells, snakemake.output.cells)
log.info("%s: %d cells", p.row, len(cells))
