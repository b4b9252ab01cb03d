"""Step: t-SNE of one encoder's report embeddings (one panel per extraction), coloured by CheXpert label."""
import json

import numpy as np

from medsynth.io import read_table
from medsynth.papers import chambon2022_text as T
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
reports = read_table(snakemake.input.reports)
macro = {d["extra"]["extraction"]: d["value"] for d in json.loads(open(snakemake.input.results).read())}
panels = {}
with np.load(snakemake.input.embeddings, allow_pickle=False) as data:
    for ext in data.files:
        panels[ext] = (T.tsne_coordinates(data[ext], p.seed, p.perplexity), macro[ext])
name = T.encoder_entries(p.study)[snakemake.wildcards.encoder]["name"]
T.plot_tsne(panels, list(reports.label), f"{name}: t-SNE of {len(reports)} {p.study['section']} embeddings "
            f"(colour = CheXpert label, {p.study['label_rule']})", snakemake.output[0], k=p.study["k"])
log.info("t-SNE of %s: %s", name, list(panels))
