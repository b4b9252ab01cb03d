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
              provenance: dict) -> dict:
    missing = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if missing:
        raise ValueError(f"cell {paper}/{table}/{row}/{column}: provenance lacks {missing}")
    return {"paper": paper, "table": table, "row": row, "column": column,
            "value": None if value is None else float(value), "std": None if std is None else float(std),
            "provenance": provenance}


def load_cells(paths: Iterable[str | Path]) -> list[dict]:
    cells: list[dict] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        cells.extend(data if isinstance(data, list) else [data])
    return cells
