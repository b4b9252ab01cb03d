"""Reading what the workflow wrote below a results folder, for the app's Explore and Compare pages.

Layout (rules/*.smk): data/<dataset>/{manifest.parquet,rejects.csv,summary.json}, eval/**/*cells.json (measured
report cells), figures/<name>/*.png, samples/<model>/<set>/{samples.csv,*.png}, models/<m>/{vae,diffusion}_train.json
(logged losses). Nothing here computes a metric: the values are the workflow's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..manifest import CHEXPERT_LABELS
from ..report.cells import load_cells
from ..report.render import _cell_text, _provenance_line, side_by_side

LABEL_STATES = {"positive": 1.0, "negative": 0.0, "uncertain": -1.0}


# --- datasets (Explore) ---
def datasets(results: Path) -> list[str]:
    root = Path(results) / "data"
    return sorted(d.name for d in root.glob("*") if (d / "manifest.parquet").is_file()) if root.is_dir() else []


def manifest(results: Path, dataset: str) -> pd.DataFrame:
    return pd.read_parquet(Path(results) / "data" / dataset / "manifest.parquet")


def has_images(results: Path, dataset: str) -> bool:
    """Whether a dataset's manifest has an `image` column (read from the Parquet schema, not the rows)."""
    import pyarrow.parquet as pq

    return "image" in pq.read_schema(Path(results) / "data" / dataset / "manifest.parquet").names


def rejects(results: Path, dataset: str) -> pd.DataFrame:
    path = Path(results) / "data" / dataset / "rejects.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["id", "source", "reason", "detail"])
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def label_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in CHEXPERT_LABELS if c in df.columns]


def filter_manifest(df: pd.DataFrame, splits=(), views=(), label: str | None = None, state: str = "positive",
                    text: str = "") -> pd.DataFrame:
    """Rows in the given splits / views (empty = all), with `label` in `state`, whose report contains `text`."""
    keep = pd.Series(True, index=df.index)
    if splits:
        keep &= df["split"].isin(list(splits))
    if views and "view" in df.columns:
        keep &= df["view"].fillna("").isin(list(views))
    if label:
        if label not in df.columns:
            raise KeyError(f"label column {label!r} is not in the manifest")
        keep &= df[label] == LABEL_STATES[state]
    if text.strip():
        report = sum((df[c].fillna("").astype(str) + " " for c in ("findings", "impression", "prompt")
                      if c in df.columns), pd.Series("", index=df.index))
        keep &= report.str.contains(text.strip(), case=False, regex=False)
    return df[keep]


def positive_labels(row: pd.Series, labels: list[str]) -> str:
    return ", ".join(c for c in labels if row.get(c) == 1.0)


def image_path(results: Path, relative) -> Path | None:
    """The processed image of a manifest row (paths are relative to the results folder), when it exists."""
    if not isinstance(relative, str) or not relative:
        return None
    path = Path(results) / relative
    return path if path.is_file() else None


# --- report tables (Compare) ---
def cell_files(results: Path) -> list[Path]:
    root = Path(results) / "eval"
    return sorted(root.rglob("*cells.json")) if root.is_dir() else []


def paper_cells(results: Path) -> dict[str, list[dict]]:
    """Measured cells by paper, from every cell file the workflow wrote."""
    out: dict[str, list[dict]] = {}
    for cell in load_cells(cell_files(results)):
        out.setdefault(cell["paper"], []).append(cell)
    return out


@dataclass
class TableView:
    id: str
    title: str
    frame: pd.DataFrame            # rows x columns of "measured [n] / published (Δ)" text
    provenance: list[dict]         # note [i] -> provenance dict (1-based in the text)
    notes: str
    compared: dict[str, str]


def table_views(paper: str, cells: list[dict]) -> list[TableView]:
    """The paper's tables with the measured cells in place, as the HTML report prints them (medsynth.report)."""
    views = []
    for t in side_by_side(paper, cells):
        frame = pd.DataFrame({col: [_cell_text(cells_[i]) for cells_ in t.rows.values()]
                              for i, col in enumerate(t.columns)}, index=list(t.rows))
        views.append(TableView(t.id, t.title, frame, t.provenance, t.notes, t.compared))
    return views


def table_html(view: TableView) -> str:
    """An HTML table whose measured cells show their provenance on hover (title attribute)."""
    import html
    import re

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["", *view.frame.columns])
    body = []
    for row, values in view.frame.iterrows():
        tds = [f"<th>{html.escape(str(row))}</th>"]
        for text in values:
            m = re.search(r"\[(\d+)\]", text)
            title = ""
            if m and 0 < int(m.group(1)) <= len(view.provenance):
                note = int(m.group(1))
                title = f' title="{html.escape(_provenance_line(note, view.provenance[note - 1]), quote=True)}"'
            tds.append(f"<td{title}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<table class="medsynth-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


# --- sample grids, figures, training curves (Compare) ---
def sample_sets(results: Path) -> list[tuple[str, str, Path]]:
    root = Path(results) / "samples"
    if not root.is_dir():
        return []
    return [(t.parent.parent.name, t.parent.name, t) for t in sorted(root.glob("*/*/samples.csv"))]


def sample_grid(table: Path, n: int = 8) -> list[tuple[Path, str]]:
    """The first n images of a sample set with 'prompt (seed s)' captions."""
    df = pd.read_csv(table, keep_default_na=False, na_values=[""])
    out = []
    for _, row in df.head(n).iterrows():
        path = table.parent / str(row["file"])
        if path.is_file():
            out.append((path, f"{str(row.get('prompt', ''))[:80]} (seed {row.get('seed', '?')})"))
    return out


def figures(results: Path) -> dict[str, list[Path]]:
    root = Path(results) / "figures"
    if not root.is_dir():
        return {}
    return {d.name: sorted(d.glob("*.png")) for d in sorted(root.iterdir()) if d.is_dir() and any(d.glob("*.png"))}


def training_curves(model_dir: Path) -> dict[str, pd.DataFrame]:
    """Per stage ('vae', 'diffusion'): a frame indexed by optimiser step with the logged train loss and, at the
    steps it was measured, the validation loss (the stage summaries the train rules write)."""
    curves = {}
    for stage in ("vae", "diffusion"):
        path = Path(model_dir) / f"{stage}_train.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        train = summary.get("train_loss") or []
        if not train:
            continue
        # train_loss holds this run's steps; a resumed run starts after resumed_from
        first = int(summary.get("resumed_from") or 0) + 1
        frame = pd.DataFrame({"train loss": np.asarray(train, dtype=float)},
                             index=pd.RangeIndex(first, first + len(train), name="step"))
        val = dict((int(s), float(v)) for s, v in summary.get("val_loss") or [])
        frame["validation loss"] = pd.Series(val, dtype=float).reindex(frame.index)
        curves[stage] = frame
    return curves
