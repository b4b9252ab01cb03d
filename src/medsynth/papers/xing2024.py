"""xing2024 table assembly: Table 1 cells from the generic volume_metrics records (slice-wise FID/KID/IS, patch-wise
FID/KID) and the Figure-4 attribute-toggle scores as a cell table."""
from __future__ import annotations

from ..report.cells import cell_from_record, make_cell

PAPER = "xing2024"


def table1_cells(row: str, slice_rec: dict, patch_rec: dict, dataset: str, scale: str, model: str,
                 sources: dict) -> list[dict]:
    """One Table 1 row: FID, KID, IS slice-wise (published protocol: 2D features of single-channel slices) and
    patch-wise FID/KID (3D features) in table1_patch."""
    cells = []
    for column, metric in (("FID", "fid"), ("KID", "kid"), ("IS", "is")):
        if metric in slice_rec:
            cells.append(cell_from_record(PAPER, "table1", row, column, slice_rec[metric], dataset=dataset,
                                          scale=scale, reproduces=row, model=model, source=sources["slice"]))
    for column, metric in (("FID", "fid"), ("KID", "kid")):
        cells.append(cell_from_record(PAPER, "table1_patch", row, column, patch_rec[metric], dataset=dataset,
                                      scale=scale, model=model, source=sources["patch"]))
    return cells


def heatmap_cells(scores: dict, dataset: str, scale: str, model: str) -> list[dict]:
    """Figure 4 scored: per arm, heat-mass share in the emphysema region minus its lung-volume share."""
    cells = []
    for arm, s in scores["arms"].items():
        prov = {"dataset": dataset, "n": s["n"], "scale": scale, "model": model, "seeds": scores["seeds"],
                "method": "mean over (crop, seed) of |x(a) - x(b)| mass share inside emphysema (lungs) minus the "
                          "emphysema share of lung volume; std = standard error",
                "toggle": s["toggle"]}
        cells.append(make_cell(PAPER, "figure4_scores", arm, "enrichment", s["enrichment"], std=s["enrichment_se"],
                               provenance=prov))
        cells.append(make_cell(PAPER, "figure4_scores", arm, "mass share", s["mass_share"], std=s["mass_share_se"],
                               provenance=prov))
        cells.append(make_cell(PAPER, "figure4_scores", arm, "volume share", s["volume_share"],
                               std=s.get("volume_share_se"), provenance=prov))
    return cells
