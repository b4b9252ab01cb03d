"""Step: run a dataset's adapter and write its raw manifest."""
from pathlib import Path

from medsynth.adapters import AdapterContext, build_manifest
from medsynth.ids import resolve_key
from medsynth.io import write_table
from medsynth.workflow import REAL_ADAPTERS, script_logging

log = script_logging(snakemake)
p = snakemake.params
ctx = AdapterContext(
    name=snakemake.wildcards.dataset,
    adapter=p.dataset["adapter"],
    cfg=p.dataset,
    key=resolve_key(p.pseudonym, real_data=p.dataset["adapter"] in REAL_ADAPTERS),
    results=Path(p.results),
    seed=p.seed,
    split_fractions=p.split,
)
df = build_manifest(ctx)
log.info("%s: %d rows from adapter %s", ctx.name, len(df), ctx.adapter)
write_table(df, snakemake.output[0])
