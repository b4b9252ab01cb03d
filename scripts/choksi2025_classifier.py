"""Step (beyond the poster): the judge (medsynth.classifier.judge: the project's classifier, trained on its own
phantom cohort) scores generated images for the findings their reports prompt; AUC per finding, beside the same
judge on the real images of the reports and the judge's own held-out AUC (95 % bootstrap interval). Findings the
judge cannot separate on its held-out split (AUC below its floor) are refused with the reason, not scored."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medsynth.classifier.data import image_batch, label_targets
from medsynth.classifier.judge import heldout_table, load_judge
from medsynth.io import atomic_path, read_table, write_json
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
samples = read_table(snakemake.input.samples)
scorer = load_judge(Path(snakemake.input.weights), Path(snakemake.input.card))
labels = [lab for lab in scorer.labels if lab in samples.columns]
y = label_targets(samples, labels, scorer.uncertain)
folder = Path(snakemake.input.samples).parent
cols = [scorer.labels.index(lab) for lab in labels]
gen = scorer.predict(image_batch([folder / f for f in samples["file"]], scorer.image_size))[:, cols]
real = scorer.predict(image_batch([Path(p.results) / f for f in samples["source_image"]], scorer.image_size))[:, cols]
heldout = heldout_table(scorer.card)
out = {"dataset": p.dataset, "model": p.model, "scale": p.scale, "seed": p.seed, "n": len(samples),
       "splits": sorted(samples["split"].unique().tolist()), "classifier": scorer.provenance,
       "method": "ROC AUC of the judge's probability for each label, truth = labels of the prompting report; "
                 "accuracy/F1 at the judge's validation-chosen (Youden) thresholds",
       "note": "the judge never saw these images or their patients (its own phantom cohort); AUC is None where a "
               "label has no positive or no negative, and refused where the judge's held-out AUC is below its floor",
       "generated": scorer.metrics(y, gen, labels), "real": scorer.metrics(y, real, labels),
       "refused": scorer.refusals(labels)}
write_json(out, snakemake.output.json)

names = [n for n in labels if out["generated"][n]["auc"] is not None]
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 3.8))
ax.bar(x - 0.27, [out["real"][n]["auc"] or 0 for n in names], 0.27, label="real images of the reports")
ax.bar(x, [out["generated"][n]["auc"] for n in names], 0.27, label="generated from the reports")
held = [heldout.get(n, {}) for n in names]
ax.bar(x + 0.27, [h.get("auc") or 0 for h in held], 0.27, color="0.6", label="judge, own held-out split (95% CI)",
       yerr=np.array([[h["auc"] - h["ci"][0], h["ci"][1] - h["auc"]] if h.get("ci") else [0, 0] for h in held]).T,
       capsize=2)
ax.axhline(0.5, color="gray", lw=0.8, ls="--")
ax.set_xticks(x, [f"{n}\n(+{out['generated'][n]['positives']})" for n in names], fontsize=7)
ax.set_ylim(0, 1.05)
ax.set_ylabel("AUC")
refused = f"; refused: {', '.join(out['refused'])}" if out["refused"] else ""
ax.set_title(f"Judge AUC per finding, {len(samples)} report prompts ({p.dataset}, {p.scale} scale){refused}",
             fontsize=8)
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
log.info("generated-image AUCs: %s; refused: %s", {n: out["generated"][n]["auc"] for n in names}, out["refused"])
