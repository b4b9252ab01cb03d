"""Step: render one paper's report page (Markdown + HTML) from its measured cells and figures."""
import os
from pathlib import Path

from medsynth.io import atomic_path, read_json
from medsynth.report.cells import load_cells
from medsynth.report.progress import write_live_index
from medsynth.report.render import side_by_side, to_html, to_markdown
from medsynth.workflow import script_logging

log = script_logging(snakemake)
paper = snakemake.wildcards.paper
cells = load_cells(snakemake.input.cells)
tables = side_by_side(paper, cells)
out_dir = Path(snakemake.output.html).parent
figures = [os.path.relpath(f, out_dir) for f in snakemake.input.figures]
config_name = ", ".join(snakemake.params.configs)
judges = [read_json(c) for c in snakemake.input.get("judges", [])]  # cards of the classifiers that scored images
for fmt, path in ((to_markdown, snakemake.output.markdown), (to_html, snakemake.output.html)):
    with atomic_path(path) as tmp:
        tmp.write_text(fmt(paper, tables, snakemake.params.scale, config_name, figures, judges))
log.info("%s: %d measured cells, %d figures", paper, len(cells), len(figures))
# While the run goes on, the live index links this page (the report_index rule writes the final one at the end).
write_live_index(Path(snakemake.output.html).parent.parent, snakemake.params.cells, snakemake.params.scale)
