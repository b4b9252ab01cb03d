"""Step (beyond the poster): the judge (medsynth.classifier.judge: the project's classifier, trained on its own
phantom cohort) scores generated images for the findings their reports prompt; AUC per finding, beside the same
judge on the real images of the reports and the judge's own held-out AUC (95 % bootstrap interval). Findings the
judge cannot separate on its held-out split (AUC below its floor) are refused with the reason, not scored."""
from pathlib import Path

from medsynth.classifier.data import image_batch, label_targets
from medsynth.classifier.judge import heldout_table, load_judge
from medsynth.io import atomic_path, read_table, write_json
from medsynth.report.auc_figure import finding_auc_figure
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
refused = f"; refused: {', '.join(out['refused'])}" if out["refused"] else ""
fig = finding_auc_figure([("real images of the reports", out["real"]), ("generated from the reports", out["generated"]),
                          ("judge, own held-out split", heldout)], names,
                         f"Judge AUC per finding, {len(samples)} report prompts ({p.dataset}, {p.scale} scale){refused}",
                         color=[None, None, "0.6"])
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
log.info("generated-image AUCs: %s; refused: %s", {n: out["generated"][n]["auc"] for n in names}, out["refused"])
