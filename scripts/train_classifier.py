"""Step: train the project's classifier (the judge) and test it on its held-out split: per-label metrics at its
validation-chosen thresholds, AUC with 95 % bootstrap intervals, labels refused by the AUC floor -> its card."""
from pathlib import Path

import torch

from medsynth.classifier.judge import AUC_FLOOR, refusals
from medsynth.classifier.train import evaluate_classifier, save_classifier, train_classifier
from medsynth.io import read_json, read_table, write_json
from medsynth.metrics.provenance import code_version
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p, dataset = snakemake.params, snakemake.wildcards.dataset
df = read_table(snakemake.input.manifest)
if p.own_cohort:  # the judge's phantom cohort: refuse it if it shares a patient with the dataset it judges
    from medsynth.phantom.judge_cohort import check_disjoint

    trained_on = {"cohort": "phantom_judge", **check_disjoint(df, read_table(snakemake.input.judged), dataset)}
else:
    trained_on = {"cohort": dataset}
model, meta = train_classifier(df, Path(p.images), p.cfg, seed=p.seed)
metrics = evaluate_classifier(model, meta, df, Path(p.images), "test", n_boot=int(p.judge.get("n_boot", 1000)))
heldout = {lab: {**ci, "threshold": meta["thresholds"][lab]} for lab, ci in metrics["auc_ci"].items()}
meta.update({"dataset": dataset, "trained_on": ", ".join(f"{k}: {v}" for k, v in trained_on.items()),
             "heldout_split": f"test (N={metrics['n']})", "heldout": heldout,
             "auc_floor": float(p.judge.get("auc_floor", AUC_FLOOR))})
meta["refused"] = refusals(meta)
save_classifier(model, meta, Path(snakemake.output.weights), Path(snakemake.output.card))
card = read_json(snakemake.output.card)
metrics.update({"dataset": dataset, "arch": meta["arch"], "labels": meta["labels"], "trained_on": trained_on,
                "weights_sha256": card["weights_sha256"], "n_train": meta["n_train"], "n_val": meta["n_val"],
                "seed": meta["seed"], "code_version": code_version(), "threshold": meta["thresholds"],
                "threshold_source": meta["threshold_source"], "auc_floor": meta["auc_floor"],
                "refused": meta["refused"],
                "definition": "sigmoid scores of the project's classifier on its held-out split; positive at each "
                              "label's threshold (Youden's J on the validation split); AUC 95% CI: percentile "
                              "bootstrap over images"})
write_json(metrics, snakemake.output.test)
log.info("held-out AUC [95%% CI]: %s", {k: (round(v["auc"], 3), v["ci"]) for k, v in heldout.items() if v["auc"]})
log.info("refused: %s", meta["refused"])
