"""Step: headless-Chromium screenshot of a report page."""
from pathlib import Path

from medsynth.report.screenshot import screenshot
from medsynth.workflow import script_logging

log = script_logging(snakemake)
screenshot(Path(snakemake.input.html), Path(snakemake.output[0]))
log.info("screenshot of %s written", snakemake.input.html)
