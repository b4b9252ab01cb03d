"""Step: train the project's classifier on a dataset's training split; evaluate it on the test split."""
from pathlib import Path

import torch

from medsynth.classifier.train import evaluate_classifier, save_classifier, train_classifier
from medsynth.io import read_table, write_json
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
results = Path(snakemake.params.results)
df = read_table(snakemake.input.manifest)
model, meta = train_classifier(df, results, snakemake.params.cfg, seed=snakemake.params.seed)
meta["dataset"] = snakemake.wildcards.dataset
save_classifier(model, meta, Path(snakemake.output.weights), Path(snakemake.output.card))
metrics = evaluate_classifier(model, meta, df, results, "test")
metrics.update({"dataset": snakemake.wildcards.dataset, "arch": meta["arch"], "labels": meta["labels"]})
write_json(metrics, snakemake.output.test)
log.info("test AUCs: %s", {k: v["auc"] for k, v in metrics["per_label"].items()})
