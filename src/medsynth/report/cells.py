"""Measured table cells: one value of one paper table, with the provenance that produced it.

A cell file is JSON: {"paper", "table", "row", "column", "value", "std", "n", "provenance": {...}}. Provenance
names at least the backbone/weights (with file hash) or the model, the image count, the dataset and split, the
config scale and the seed; `render` prints it beside the number.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

REQUIRED_PROVENANCE = ("dataset", "n", "method")


def make_cell(paper: str, table: str, row: str, column: str, value: float | None, *, std: float | None = None,
              provenance: dict, reproduces: str | None = None) -> dict:
    """A cell; a number computed with a feature backbone must also name its weights (sha256). `reproduces`: the
    paper's row this measured row reproduces (its published value is then printed beside ours, with the Δ)."""
    missing = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if provenance.get("backbone") and not provenance.get("weights_sha256"):
        missing.append("weights_sha256 (a backbone without its weights hash)")
    if missing:
        raise ValueError(f"cell {paper}/{table}/{row}/{column}: provenance lacks {missing}")
    if provenance.get("scale") == "paper" and str(provenance.get("backbone", "")).endswith("-random"):
        raise ValueError(f"cell {paper}/{table}/{row}/{column}: a paper-scale number computed with the random "
                         f"stand-in backbone {provenance['backbone']!r}; configure the real weights")
    if provenance.get("backbone"):
        from ..metrics.stand_ins import is_stand_in

        provenance = {**provenance, "stand_in": bool(provenance.get("stand_in")) or is_stand_in(provenance["backbone"])}
    cell = {"paper": paper, "table": table, "row": row, "column": column,
            "value": None if value is None else float(value), "std": None if std is None else float(std),
            "provenance": provenance}
    if reproduces:
        cell["reproduces"] = reproduces
    return cell


def cell_from_record(paper: str, table: str, row: str, column: str, record: dict, *, dataset: str, scale: str,
                     factor: float = 1.0, reproduces: str | None = None, **provenance) -> dict:
    """A table cell from a metric record (MetricRecord.to_dict(), e.g. from rule generative_metrics): value and
    spread times `factor` (papers print KID x 1000, say), with the record's backbone, weights, N, resize mode, seed,
    definition and code version as provenance."""
    extra = record.get("extra") or {}
    prov = {"dataset": dataset, "n": record["n"], "method": record.get("definition") or record["metric"],
            "scale": scale, **{k: record[k] for k in ("backbone", "weights_sha256", "resize_mode", "seed",
                                                       "code_version") if record.get(k) is not None},
            **{k: extra[k] for k in ("weights", "n_reference", "stand_in", "subsets", "subset_size", "splits")
               if k in extra}, **provenance}
    if factor != 1.0:
        prov["factor"] = factor
    std = None if record.get("std") is None else record["std"] * factor
    return make_cell(paper, table, row, column, record["value"] * factor, std=std, provenance=prov,
                     reproduces=reproduces)


def load_cells(paths: Iterable[str | Path]) -> list[dict]:
    cells: list[dict] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        cells.extend(data if isinstance(data, list) else [data])
    return cells
