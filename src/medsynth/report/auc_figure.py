"""The one bar chart of per-finding classifier AUCs that the pages share (choksi2025's and chen2024's "does prompting
a finding change the image" figures): one bar group per finding, a bar per scored image set with its 95 % bootstrap
interval where the record has one, the positives of each set under the finding's name, chance drawn at 0.5."""
from __future__ import annotations

import numpy as np


def _err(metrics: list[dict]) -> np.ndarray | None:
    """2 x n error-bar extents from each metric's interval (`auc_ci` of a scored set, `ci` of the judge's table)."""
    if not any((m.get("auc_ci") or m.get("ci")) for m in metrics):
        return None
    rows = []
    for m in metrics:
        ci, auc = m.get("auc_ci") or m.get("ci"), m.get("auc")
        rows.append([auc - ci[0], ci[1] - auc] if ci and auc is not None else [0.0, 0.0])
    return np.array(rows).T


def finding_auc_figure(sets: list[tuple[str, dict]], names: list[str], title: str, color: list | None = None):
    """`sets`: (legend label, {finding: metrics with auc, positives, auc_ci/ci}) in bar order; `names`: the findings
    drawn. A finding a set cannot score (AUC None) draws no bar for that set. Returns the matplotlib figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(names))
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(max(6, (0.6 + 0.25 * len(sets)) * len(names)), 3.8 + 0.3 * (len(sets) > 3)))
    for k, (label, per) in enumerate(sets):
        mets = [per.get(n) or {} for n in names]
        ax.bar(x + (k - (len(sets) - 1) / 2) * width, [m.get("auc") or 0 for m in mets], width, label=label,
               yerr=_err(mets), capsize=2, color=None if color is None else color[k])
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    pos = ["/".join(str((per.get(n) or {}).get("positives", "?")) for _, per in sets) for n in names]
    ax.set_xticks(x, [f"{n}\n(+{p})" for n, p in zip(names, pos)], fontsize=7)
    ax.set_ylim(0, 1.32 if len(sets) <= 3 else 1.45)   # the legend sits above the bars, not on them
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("AUC (95% bootstrap CI)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="upper center", ncol=3 if len(sets) <= 3 else 2)
    fig.tight_layout()
    return fig
