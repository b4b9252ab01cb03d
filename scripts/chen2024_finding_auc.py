"""Step (chen2024): does prompting a finding change the image? The dataset's classifier (generic classifier_metrics
records) scores, for the findings their prompts name: images generated from the held-out reports (few positives per
finding on a small cohort), from the designed finding prompts (the model entry's `findings` prompt set: one finding
per prompt, many seeds each, wording the LM never saw as a whole: the decisive set) and from the training reports
(Table 2's synthetic set: reports the LM was fine-tuned on, so they measure fit, not generalisation). AUC per finding
with its 95 % bootstrap interval, beside the same classifier on the held-out reports' real images. The title also
says whether the LM reads the report at all (the lm stage's text reliance: NLL per image token of validation images
given their own report, another image's report, a blank prompt). Beside them: the classifier's own held-out AUC
(its card), and the labels it refuses to score (held-out AUC below its floor), named in the title."""
from medsynth.classifier.judge import heldout_table, refusals
from medsynth.io import atomic_path, read_json
from medsynth.report.auc_figure import finding_auc_figure
from medsynth.workflow import script_logging

log = script_logging(snakemake)
held, train = read_json(snakemake.input.scored), read_json(snakemake.input.scored_train)
designed = read_json(snakemake.input.scored_findings) if snakemake.input.get("scored_findings") else None
sets = [("real images of the held-out reports", held.get("real", {})),
        (f"generated from the held-out reports ({held['split']}, {held.get('n', '?')})", held["generated"])]
if designed:
    sets.append((f"generated from the finding prompts ({designed.get('n', '?')})", designed["generated"]))
sets.append((f"generated from the training reports, seen in fine-tuning ({train.get('n', '?')})", train["generated"]))
names = [n for n in held["generated"] if n != "macro" and any((per.get(n) or {}).get("auc") is not None
                                                              for _, per in sets[1:])]
sets.append(("classifier, own held-out split", heldout_table(snakemake.input.card)))
refused = refusals(snakemake.input.card, [n for n in held["generated"] if n != "macro"])
title = (f"Prompted finding -> classifier AUC ({held.get('backbone', 'classifier')}, {held['scale']} scale); "
         "(+positives per set)" + (f"; refused: {', '.join(refused)}" if refused else ""))
reliance = read_json(snakemake.input.lm_summary).get("text_reliance")
if reliance:
    title += (f"\nLM NLL per image token, {reliance['split']} images (N={reliance['n']}): own report "
              f"{reliance['nll_own_report']:.3f}, another image's report {reliance['nll_other_report']:.3f}, "
              f"blank {reliance['nll_blank']:.3f}")
    log.info("text reliance: %s", reliance)
fig = finding_auc_figure(sets, names, title, color=[None] * (len(sets) - 1) + ["0.6"])
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
log.info("generated-image AUC per finding (held-out reports / finding prompts / training reports): %s; refused: %s",
         {n: tuple((per.get(n) or {}).get("auc") for _, per in sets[1:-1]) for n in names}, refused)
