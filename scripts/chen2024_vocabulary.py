"""Step (chen2024 Module 1, Fig. 2): anatomy and pathology vocabularies mined from the train split's reports, with
their word-frequency bar charts."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from medsynth.anatomy_pathology import mine_vocabulary, report_texts
from medsynth.io import atomic_path, read_table, write_table
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
texts = []
for path in snakemake.input.manifests:
    df = read_table(path)
    texts += report_texts(df[df["split"] == "train"] if "split" in df.columns else df)
vocab = mine_vocabulary(texts, p.spec.get("top_k", 300), p.spec.get("anatomy", 75), p.spec.get("pathology", 44))
write_table(vocab.assign(n_reports=len(texts)), snakemake.output.table)

fig, axes = plt.subplots(2, 1, figsize=(10, 6))
for ax, category in zip(axes, ("anatomy", "pathology")):
    sub = vocab[vocab["category"] == category].head(30)
    ax.bar(sub["word"], sub["count"], color="tab:blue" if category == "anatomy" else "tab:red")
    ax.set_title(f"{category} vocabulary: {int((vocab['category'] == category).sum())} words "
                 f"(top 30 shown), {len(texts)} train reports of {', '.join(p.datasets)}", fontsize=9)
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    ax.set_ylabel("count")
fig.tight_layout()
with atomic_path(snakemake.output.figure) as tmp:
    fig.savefig(tmp, format="png", dpi=110)
log.info("vocabulary: %s", vocab.groupby("category").size().to_dict())
