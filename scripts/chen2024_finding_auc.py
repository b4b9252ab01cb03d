"""Step (chen2024): does prompting a finding change the image? The dataset's classifier (generic classifier_metrics
records) scores the images generated from the held-out reports and from the training reports (Table 2's synthetic
set: four times the positives, but reports the LM was fine-tuned on, so they measure fit, not generalisation) for
those reports' findings: AUC per finding with its 95 % bootstrap interval, beside the same classifier on the held-out
reports' real images."""
from medsynth.io import atomic_path, read_json
from medsynth.report.auc_figure import finding_auc_figure
from medsynth.workflow import script_logging

log = script_logging(snakemake)
held, train = read_json(snakemake.input.scored), read_json(snakemake.input.scored_train)
gen, real = held["generated"], held.get("real", {})
names = [n for n, m in gen.items() if n != "macro" and (m.get("auc") is not None
                                                       or train["generated"].get(n, {}).get("auc") is not None)]
fig = finding_auc_figure(
    [("real images of the held-out reports", real),
     (f"generated from the held-out reports ({held['split']}, {held.get('n', '?')})", gen),
     (f"generated from the training reports, seen in fine-tuning ({train.get('n', '?')})", train["generated"])], names,
    f"Prompted finding -> classifier AUC ({held.get('backbone', 'classifier')}, {held['scale']} scale); "
    "(+positives per set)")
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
log.info("generated-image AUC per finding (held-out / training prompts): %s",
         {n: (gen.get(n, {}).get("auc"), train["generated"].get(n, {}).get("auc")) for n in names})
