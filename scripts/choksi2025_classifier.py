"""Step (beyond the poster): the project's classifier, trained on real phantom radiographs, scores generated
images for the finding their report prompts; AUC per finding, beside the same classifier on the real images."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medsynth.classifier.data import image_batch, label_targets
from medsynth.classifier.train import load_classifier, predict
from medsynth.io import read_table, write_figure, write_json
from medsynth.papers.choksi2025 import classifier_auc
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
samples = read_table(snakemake.input.samples)
model, meta = load_classifier(Path(snakemake.input.weights), Path(snakemake.input.card))
labels = meta["labels"]
y = label_targets(samples, labels, meta["uncertain"])
folder = Path(snakemake.input.samples).parent
gen = predict(model, image_batch([folder / f for f in samples["file"]], meta["image_size"]))
real = predict(model, image_batch([Path(p.results) / f for f in samples["source_image"]], meta["image_size"]))
out = {"dataset": p.dataset, "model": p.model, "scale": p.scale, "seed": p.seed, "n": len(samples),
       "splits": sorted(samples["split"].unique().tolist()), "classifier": {"arch": meta["arch"],
       "weights_sha256": meta.get("weights_sha256"), "trained_on": "real images, train split"},
       "method": "ROC AUC of the classifier's probability for each label, truth = labels of the prompting report",
       "note": "prompts include training-split reports (the classifier and the diffusion model saw their real "
               "images); AUC is None where a label has no positive or no negative",
       "generated": classifier_auc(y, gen, labels), "real": classifier_auc(y, real, labels)}
write_json(out, snakemake.output.json)

names = [n for n in labels if out["generated"][n]["auc"] is not None]
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.6))
ax.bar(x - 0.2, [out["real"][n]["auc"] for n in names], 0.4, label="real images of the reports")
ax.bar(x + 0.2, [out["generated"][n]["auc"] for n in names], 0.4, label="generated from the reports")
ax.axhline(0.5, color="gray", lw=0.8, ls="--")
ax.set_xticks(x, [f"{n}\n(+{out['generated'][n]['positives']})" for n in names], fontsize=7)
ax.set_ylim(0, 1.05)
ax.set_ylabel("AUC")
ax.set_title(f"Classifier AUC per finding, {len(samples)} report prompts ({p.dataset}, {p.scale} scale)", fontsize=9)
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
write_figure(fig, snakemake.output.figure, dpi=120)
log.info("generated-image AUCs: %s", {n: out["generated"][n]["auc"] for n in names})
