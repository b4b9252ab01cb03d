"""Step: train the project's classifier on a dataset's training split; evaluate it on the test split."""
from pathlib import Path

import torch

from medsynth.classifier.train import evaluate_classifier, save_classifier, train_classifier
from medsynth.io import read_json, read_table, write_json
from medsynth.metrics.provenance import code_version
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
results = Path(snakemake.params.results)
df = read_table(snakemake.input.manifest)
model, meta = train_classifier(df, results, snakemake.params.cfg, seed=snakemake.params.seed)
meta["dataset"] = snakemake.wildcards.dataset
save_classifier(model, meta, Path(snakemake.output.weights), Path(snakemake.output.card))
metrics = evaluate_classifier(model, meta, df, results, "test")
card = read_json(snakemake.output.card)
metrics.update({"dataset": snakemake.wildcards.dataset, "arch": meta["arch"], "labels": meta["labels"],
                "weights_sha256": card["weights_sha256"], "n_train": meta["n_train"], "seed": meta["seed"],
                "code_version": code_version(), "threshold": 0.5,
                "definition": "sigmoid scores of the project's classifier on the held-out split; positive at >= 0.5"})
write_json(metrics, snakemake.output.test)
log.info("test AUCs: %s", {k: v["auc"] for k, v in metrics["per_label"].items()})
