"""Step (chen2024): does prompting a finding change the image? The dataset's classifier (generic classifier_metrics
record) scores images generated from held-out reports for those reports' findings: AUC per finding, beside the same
classifier on the reports' real images."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medsynth.io import atomic_path, read_json
from medsynth.workflow import script_logging

log = script_logging(snakemake)
rec = read_json(snakemake.input.scored)
gen, real = rec["generated"], rec.get("real", {})
names = [n for n, m in gen.items() if n != "macro" and m.get("auc") is not None]
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.6))
ax.bar(x - 0.2, [real.get(n, {}).get("auc") or 0 for n in names], 0.4, label="real images of the reports")
ax.bar(x + 0.2, [gen[n]["auc"] for n in names], 0.4, label="vq_ar images generated from the reports")
ax.axhline(0.5, color="gray", lw=0.8, ls="--")
ax.set_xticks(x, names, fontsize=7, rotation=20)
ax.set_ylim(0, 1.05)
ax.set_ylabel("AUC")
ax.set_title(f"Prompted finding -> classifier AUC ({rec.get('backbone', 'classifier')}, split {rec['split']}, "
             f"{rec.get('n', '?')} images, {rec['scale']} scale); macro generated "
             f"{gen['macro'].get('auc') if gen['macro'].get('auc') is None else round(gen['macro']['auc'], 3)}",
             fontsize=8)
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
log.info("generated-image AUC per finding: %s", {n: gen[n]["auc"] for n in names})
