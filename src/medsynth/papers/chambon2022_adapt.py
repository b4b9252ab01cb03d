"""chambon2022 Studies 3-6: few-shot adaptations of a base text-to-image model, scored per prompt.

Every strategy is a `models:` entry (rules/train.smk trains it from the base entry's pipeline, rules/sample.smk
samples its prompt set `adapt`, whose named prompts are `negative`, `effusion` and, for textual inversion, `style`,
in one job). This module turns their samples into the paper's tables:

- Table 4: FID of each strategy x prompt against the real images of the prompt's class (negative and style
  prompts: the negative label's images; effusion prompt: the positive label's), through the generic
  generative-metrics code (medsynth.metrics.generative); beside it a domain Frechet distance in a radiograph
  classifier's feature space (the spec: FID misses the abnormality, so report a domain metric too).
- Table 5: a classifier's positive-label probability on the negative-prompt (truth 0) and effusion-prompt (truth 1)
  samples: AUC, accuracy, F1, precision, recall at a fixed threshold.

The config names each strategy's rows in the published tables (`chambon2022.adapt_study.strategies`); a strategy
that cannot run is listed with `omitted: <reason>` and the reason is recorded instead of a number.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from ..io import write_figure
from ..report.cells import make_cell

PAPER = "chambon2022"
STUDY_SET = "adapt"  # the prompt set every strategy samples; its prompts are named:
# prompt name -> (Table 4 column, class of its FID reference: "negative" | "positive")
PROMPTS = {
    "negative": ("A photo of a lung xray", "negative"),
    "effusion": ("... with a visible pleural effusion", "positive"),
    "style": ("A photo in the style of a lung xray", "negative"),
}
REQUIRED_PROMPTS = ("negative", "effusion")
TABLE5_COLUMNS = {"auc": "AUC", "accuracy": "Accuracy", "f1": "F1", "precision": "Precision", "recall": "Recall"}
DOMAIN_TABLE = "table4_domain"


def study_strategies(study: dict, models: dict) -> tuple[list[dict], list[dict]]:
    """(active, omitted) strategy entries of `chambon2022.adapt_study.strategies`, checked against the models:
    entries: each active one exists and its prompt set `adapt` names the negative and effusion prompts; row names are
    unique per table."""
    active, omitted, seen = [], [], {"table4": set(), "table5": set()}
    for entry in study.get("strategies") or []:
        if entry.get("omitted"):
            omitted.append(dict(entry))
            continue
        model = entry["model"]
        if model not in models:
            raise MedsynthError(f"chambon2022.adapt_study: strategy model '{model}' is not a models: entry (give it "
                                "`omitted: <reason>` to leave it out with a recorded reason)")
        prompts = ((models[model].get("prompt_sets") or {}).get(STUDY_SET) or {}).get("prompts")
        if not isinstance(prompts, dict) or [p for p in REQUIRED_PROMPTS if p not in prompts]:
            raise MedsynthError(f"chambon2022.adapt_study: models.{model} needs a prompt set '{STUDY_SET}' whose "
                                f"prompts are named {list(REQUIRED_PROMPTS)} (and optionally 'style'): "
                                f"{STUDY_SET}: {{prompts: {{negative: ..., effusion: ...}}}}")
        for table in seen:
            row = entry.get(table)
            if row and row in seen[table]:
                raise MedsynthError(f"chambon2022.adapt_study: two strategies fill {table} row '{row}'")
            if row:
                seen[table].add(row)
        active.append(dict(entry))
    if not active:
        raise MedsynthError("chambon2022.adapt_study: no strategy to run")
    return active, omitted


def prompt_names_of(model_entry: dict) -> list[str]:
    """The Table 4 prompts a model entry samples (names in its prompt set `adapt`), in the table's column order."""
    prompts = ((model_entry.get("prompt_sets") or {}).get(STUDY_SET) or {}).get("prompts") or {}
    return [s for s in PROMPTS if s in prompts]


def class_rows(manifest: pd.DataFrame, label: str, splits: Sequence[str]) -> pd.DataFrame:
    """Real images positive (1) for `label` in `splits`: the FID reference of one prompt class."""
    if label not in manifest.columns:
        raise MedsynthError(f"label '{label}' is not a column of the manifest")
    rows = manifest[manifest["split"].isin(list(splits)) & manifest[label].astype(float).eq(1.0)]
    rows = rows[rows["image"].notna() & rows["image"].astype(str).ne("")]
    if len(rows) < 2:
        raise MedsynthError(f"{len(rows)} real '{label}' image(s) in split(s) {list(splits)}: a Frechet distance "
                            "needs at least 2")
    return rows.reset_index(drop=True)


def table5_metrics(negative_scores, positive_scores, threshold: float = 0.5, refused: str | None = None) -> dict:
    """Classifier metrics of a strategy: negative-prompt samples are truth 0, effusion-prompt samples truth 1.
    `refused`: the judge's reason not to score the label (held-out AUC below its floor) -> no metrics, the reason."""
    from ..metrics.classification import binary_metrics

    neg, pos = np.asarray(negative_scores, float).ravel(), np.asarray(positive_scores, float).ravel()
    if not len(neg) or not len(pos):
        raise MedsynthError(f"Table 5 needs samples of both prompts ({len(neg)} negative, {len(pos)} effusion)")
    if refused:
        return {"n": len(neg) + len(pos), "positives": len(pos), "threshold": threshold, "refused": refused,
                "mean_score_negative": None, "mean_score_effusion": None}
    y = np.concatenate([np.zeros(len(neg), int), np.ones(len(pos), int)])
    out = binary_metrics(y, np.concatenate([neg, pos]), threshold)
    out.update(mean_score_negative=float(neg.mean()), mean_score_effusion=float(pos.mean()))
    return out


def _finite(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def table_cells(evals: dict, strategies: Sequence[dict], omitted: Sequence[dict], *, dataset: str,
                scale: str) -> list[dict]:
    """Report cells of Table 4 (FID; and the domain distance table beside it) and Table 5 from the per-model
    evaluation records {model: {"sets": {set: {"fid": record, "domain": record, "n", "prompt"}},
    "table5": metrics | None, "scorer": {...}, "sampling": {...}}}."""
    cells = []
    for entry in strategies:
        model = entry["model"]
        ev = evals[model]
        base_prov = {"dataset": dataset, "scale": scale, "model": model, **ev.get("sampling", {})}
        if entry.get("table4"):
            for name, rec in ev["sets"].items():
                column = PROMPTS[name][0]
                for table, key in (("table4", "fid"), (DOMAIN_TABLE, "domain")):
                    r = rec[key]
                    prov = {**base_prov, "n": r["n"], "prompt": rec["prompt"], "reference": rec["reference"],
                            "method": r.get("definition") or key, "backbone": r["backbone"],
                            "weights_sha256": r["weights_sha256"], "resize_mode": r.get("resize_mode"),
                            "n_reference": (r.get("extra") or {}).get("n_reference")}
                    cells.append(make_cell(PAPER, table, entry["table4"], column, _finite(r["value"]),
                                           provenance=prov))
        if entry.get("table5"):
            t5 = ev.get("table5")
            if t5 is None:
                raise MedsynthError(f"{model}: no Table 5 metrics (needs negative and effusion samples)")
            sc = ev["scorer"]
            prov = {**base_prov, "n": t5["n"], "positives": t5["positives"], "threshold": t5["threshold"],
                    "method": f"{sc['label']} probability of {sc['name']} on {t5['n'] - t5['positives']} negative-"
                              f"prompt (truth 0) + {t5['positives']} effusion-prompt (truth 1) samples",
                    "backbone": sc["backbone"], "weights_sha256": sc["weights_sha256"],
                    "mean_score_negative": t5["mean_score_negative"],
                    "mean_score_effusion": t5["mean_score_effusion"]}
            if t5.get("auc_undefined"):
                prov["auc_undefined"] = t5["auc_undefined"]
            if sc.get("judge_heldout_auc"):
                prov["judge_heldout_auc"] = sc["judge_heldout_auc"]
            if t5.get("refused"):
                prov["method"] = f"not scored: {t5['refused']}"
            for key, column in TABLE5_COLUMNS.items():
                cells.append(make_cell(PAPER, "table5", entry["table5"], column, _finite(t5.get(key)),
                                       provenance=prov))
    for entry in omitted:
        prov = {"dataset": dataset, "scale": scale, "n": 0, "model": entry.get("model"),
                "method": f"not run: {entry['omitted']}"}
        if entry.get("table4"):
            cells.append(make_cell(PAPER, "table4", entry["table4"], PROMPTS["negative"][0], None,
                                   provenance=prov))
        if entry.get("table5"):
            cells.append(make_cell(PAPER, "table5", entry["table5"], "AUC", None, provenance=prov))
    return cells


def findings(evals: dict, strategies: Sequence[dict]) -> dict:
    """The paper's qualitative claims, checked on the measured numbers (None where a side is missing)."""
    by5 = {e["table5"]: evals[e["model"]].get("table5") for e in strategies if e.get("table5")}
    by4 = {e["table4"]: evals[e["model"]]["sets"] for e in strategies if e.get("table4")}

    def auc(row):
        return (by5.get(row) or {}).get("auc")

    out = {}
    prior, noprior = auc("U-Net, with prior"), auc("U-Net, no prior")
    out["prior_beats_no_prior_auc"] = None if prior is None or noprior is None else bool(prior > noprior)
    base = auc("Original model")
    out["prior_beats_original_auc"] = None if prior is None or base is None else bool(prior > base)
    # "FID misses the abnormality": does the strategy with the best (lowest) effusion-prompt FID also have the
    # best Table 5 AUC? Compared over strategies in both tables.
    both = [e for e in strategies if e.get("table4") and e.get("table5") and (evals[e["model"]].get("table5") or {})
            .get("auc") is not None and "effusion" in evals[e["model"]]["sets"]]
    if len(both) >= 2:
        best_fid = min(both, key=lambda e: evals[e["model"]]["sets"]["effusion"]["fid"]["value"])
        best_auc = max(both, key=lambda e: evals[e["model"]]["table5"]["auc"])
        out["best_effusion_fid"] = best_fid["table4"]
        out["best_table5_auc"] = best_auc["table5"]
        out["fid_ranks_like_auc"] = best_fid["model"] == best_auc["model"]
    out["rows_table4"] = sorted(by4)
    return out


def sample_grid(path: str | Path, rows: dict[str, Sequence[str | Path]], title: str) -> None:
    """One row of samples per prompt (label: the prompt), written as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.5 * len(rows)), squeeze=False)
    for r, (label, paths) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(paths):
                ax.imshow(np.asarray(Image.open(paths[c]).convert("L")), cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_title(label, fontsize=7, loc="left")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    write_figure(fig, path, dpi=100)
