"""Step (chen2024 Table 2): the same classifier recipe trained once on real train images and once on the vq_ar
images generated from the same train reports (labels of those reports), both tested on the real test images."""
from pathlib import Path

import torch

from medsynth.classifier.train import evaluate_classifier, train_classifier
from medsynth.io import read_table, write_json
from medsynth.papers.chen2024 import table2_cells
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
results = Path(p.results)
manifest = read_table(snakemake.input.manifest)
samples = read_table(snakemake.input.samples)
folder = Path(snakemake.input.samples).parent.relative_to(results)
synthetic = samples.assign(image=[str(folder / f) for f in samples["file"]], split="train")
real_train = manifest[manifest["split"] == "train"]
labels = p.classifier.get("labels")
evals = {}
for key, train in (("real", real_train), ("synthetic", synthetic)):
    model, meta = train_classifier(train, results, {**p.classifier, **({"labels": labels} if labels else {})},
                                   seed=p.seed)
    labels = labels or meta["labels"]          # both classifiers predict the same labels
    heldout = manifest[manifest["split"].isin(p.test_splits)].assign(split="+".join(p.test_splits))
    ev = evaluate_classifier(model, meta, heldout, results, split="+".join(p.test_splits))
    evals[key] = {**ev, "n_train": len(train), "labels": meta["labels"]}
prov = {"dataset": p.dataset, "model": p.model, "scale": p.scale, "seed": p.seed,
        "classifier": f"{p.classifier.get('arch', 'small_cnn')} ({p.classifier.get('epochs')} epochs)"}
write_json(table2_cells(evals, prov), snakemake.output.cells)
write_json(evals, snakemake.output.record)
log.info("table 2 macro AUC: %s", {k: v["per_label"]["macro"].get("auc") for k, v in evals.items()})
