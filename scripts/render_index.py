"""Step: render the run's index page (datasets, paper coverage, scale note)."""
from pathlib import Path

from medsynth.io import atomic_path
from medsynth.report.cells import load_cells
from medsynth.report.index import build_index
from medsynth.workflow import script_logging

log = script_logging(snakemake)
cells_by_paper = {p: load_cells(files) for p, files in snakemake.params.cells.items()}
md, html = build_index(cells_by_paper, [Path(p) for p in snakemake.input.summaries], snakemake.params.scale,
                       snakemake.params.configs)
for text, path in ((md, snakemake.output.markdown), (html, snakemake.output.html)):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
