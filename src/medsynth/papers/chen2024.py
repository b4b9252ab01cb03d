"""chen2024 table assembly: Table 1 (FID / NIQE of generated images) and Table 2 (a classifier trained on
synthetic vs on real images, tested on real held-out images), as measured cells with provenance."""
from __future__ import annotations

from ..errors import MedsynthError
from ..report.cells import cell_from_record, make_cell

PAPER = "chen2024"
ROW1 = "vq_ar (this workflow)"
# Our one dataset fills the paper's first dataset's columns; the row name and provenance say which dataset it is.
T1_COLUMNS = ("MIMIC FID", "MIMIC NIQE")


def table1_cells(fid_records: dict, quality: dict, prov: dict) -> list[dict]:
    """FID (generic generative_metrics record) and NIQE (generic image_quality record, mean over images)."""
    from ..metrics.stand_ins import is_stand_in

    rec = fid_records.get("fid")
    if rec is None:
        raise MedsynthError(f"the generative-metrics record has no 'fid' (has: {', '.join(fid_records)})")
    row = f"{ROW1}, {prov['dataset']}"
    label = " (STAND-IN backbone: not comparable to the published FID)" if is_stand_in(rec.get("backbone")) else ""
    context = {k: v for k, v in prov.items() if k not in ("dataset", "scale", "n", "method", "seed")}
    fid = cell_from_record(PAPER, "table1", row, T1_COLUMNS[0], rec, dataset=prov["dataset"], scale=prov["scale"],
                           **context, method=f"Frechet distance, generated images of the {prov['split']} reports vs "
                                             f"real {prov['split']} images{label}")
    niqe = quality.get("niqe")
    if niqe is None:
        raise MedsynthError("the image-quality record has no 'niqe' entry")
    # NIQE needs images of at least 192x96 px: a smaller demo records why it has no value instead of upsampling
    method = niqe.get("definition") or "NIQE" if niqe.get("mean") is not None else \
        f"not computed: {niqe.get('not_computed', 'no value')}"
    cells = [fid, make_cell(PAPER, "table1", row, T1_COLUMNS[1], niqe.get("mean"), std=niqe.get("std"),
                            provenance={**prov, "n": niqe.get("n", 0), "method": method})]
    if prov["scale"] == "paper":
        cells = [{**c, "reproduces": "Ours"} for c in cells]
    return cells


def table2_cells(results: dict[str, dict], prov: dict) -> list[dict]:
    """`results`: {"real": eval, "synthetic": eval} of evaluate_classifier on the real test split. Pathology =
    the dataset's finding labels (macro accuracy / AUC); the phantom has no anatomy labels, so Anatomy is not
    measured (a cell with no value and its reason) and Overall equals Pathology."""
    rows = {"real": "Trained on real images", "synthetic": "Trained on vq_ar synthetic images"}
    published = {"real": "MIMIC-CXR real", "synthetic": "Ours synthetic"}
    cells = []
    for key, ev in results.items():
        macro = ev["per_label"]["macro"]
        p = {**prov, "n": ev["n"], "trained_on": key, "n_train": ev.get("n_train"), "split": ev["split"],
             "labels": ev.get("labels")}
        for group in ("Pathology", "Overall"):
            for metric, col in (("accuracy", "Acc"), ("auc", "AUC")):
                value = macro.get(metric)
                method = (f"macro {metric} over the dataset's finding labels ({macro.get('auc_labels')} with an "
                          "AUC), x100; tested on real held-out images"
                          + ("; Overall = Pathology (no anatomy labels)" if group == "Overall" else ""))
                cells.append(make_cell(PAPER, "table2", rows[key], f"{group} {col}",
                                       None if value is None else 100 * value, provenance={**p, "method": method},
                                       reproduces=published[key] if prov["scale"] == "paper" else None))
        for col in ("Anatomy Acc", "Anatomy AUC"):
            cells.append(make_cell(PAPER, "table2", rows[key], col, None, provenance={
                **p, "method": "not measured: the dataset has no anatomy labels"}))
    return cells
