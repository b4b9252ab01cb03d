"""Render a paper's report (Markdown and HTML): published tables with measured values, differences, provenance."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from .published import load_published


@dataclass
class Cell:
    published: float | None
    measured: float | None = None
    std: float | None = None
    note: int | None = None        # footnote number of the provenance


@dataclass
class SideBySide:
    id: str
    title: str
    columns: list[str]
    rows: dict[str, list[Cell]]
    notes: str = ""
    provenance: list[dict] = field(default_factory=list)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def side_by_side(paper: str, cells: list[dict]) -> list[SideBySide]:
    """Each published table with measured cells placed in its layout; measured rows the paper lacks are appended."""
    pub = load_published(paper)
    out = []
    for t in pub["tables"]:
        cols = list(t["columns"])
        rows = {r: [Cell(v) for v in vals] for r, vals in t["rows"].items()}
        table = SideBySide(t["id"], t["title"], cols, rows, t.get("notes", ""))
        for c in (c for c in cells if c["paper"] == paper and c["table"] == t["id"]):
            if c["column"] not in cols:
                raise ValueError(f"{paper}/{t['id']}: measured column {c['column']!r} is not in the paper's table")
            row = table.rows.setdefault(c["row"], [Cell(None) for _ in cols])
            cell = row[cols.index(c["column"])]
            table.provenance.append(c["provenance"])
            cell.measured, cell.std, cell.note = c["value"], c.get("std"), len(table.provenance)
        out.append(table)
    return out


def _cell_text(cell: Cell) -> str:
    measured = _fmt(cell.measured)
    if cell.std is not None:
        measured += f" ± {_fmt(cell.std, 2)}"
    if cell.note:
        measured += f" [{cell.note}]"
    diff = ""
    if cell.measured is not None and cell.published is not None:
        diff = f" (Δ {cell.measured - cell.published:+.3g})"
    return f"{measured} / {_fmt(cell.published)}{diff}"


def _provenance_line(i: int, p: dict) -> str:
    return f"[{i}] " + "; ".join(f"{k}: {v}" for k, v in p.items())


def scale_note(scale: str, config_name: str) -> str:
    if scale == "paper":
        return f"Scale: paper-scale configuration ({config_name})."
    return (f"Scale: **{scale}** run ({config_name}) on the embedded phantom / bundled data at small size. "
            "These numbers check that each pipeline runs and behaves; they are NOT a reproduction of the "
            "paper-scale values printed beside them.")


def to_markdown(paper: str, tables: list[SideBySide], scale: str, config_name: str, figures: list[str] = ()) -> str:
    pub = load_published(paper)
    lines = [f"# {pub['title']}", "", scale_note(scale, config_name), "",
             "Each cell: measured [provenance] / published (Δ = measured − published); — = not measured / not published.", ""]
    for t in tables:
        lines += [f"## {t.title}", "", "| | " + " | ".join(t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
        for row, cells in t.rows.items():
            lines.append(f"| {row} | " + " | ".join(_cell_text(c) for c in cells) + " |")
        if t.notes:
            lines += ["", f"*Note:* {t.notes}"]
        if t.provenance:
            lines += [""] + [_provenance_line(i + 1, p) + "  " for i, p in enumerate(t.provenance)]
        lines.append("")
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #bbb;padding:4px 8px;font-size:13px}th{background:#eef}td.m{font-weight:600}"
       ".pub{color:#555}.scale{background:#fff3cd;padding:8px;border:1px solid #e0c36c}.prov{font-size:12px;color:#444}"
       "img{max-width:100%;border:1px solid #ccc;margin:6px 0}")


def to_html(paper: str, tables: list[SideBySide], scale: str, config_name: str, figures: list[str] = ()) -> str:
    pub = load_published(paper)
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(paper)}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(pub['title'])}</h1>", f"<p class='scale'>{e(scale_note(scale, config_name)).replace('**', '')}</p>",
             "<p>Each cell: <b>measured</b> [provenance] / <span class='pub'>published</span> (Δ).</p>"]
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2><table><tr><th></th>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr>")
        for row, cells in t.rows.items():
            parts.append(f"<tr><th>{e(row)}</th>" + "".join(f"<td>{e(_cell_text(c))}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
        if t.notes:
            parts.append(f"<p><i>Note:</i> {e(t.notes)}</p>")
        if t.provenance:
            parts.append("<div class='prov'>" + "<br>".join(e(_provenance_line(i + 1, p)) for i, p in enumerate(t.provenance)) + "</div>")
    for fig in figures:
        parts.append(f"<figure><img src='{e(fig)}' alt='{e(fig)}'><figcaption>{e(fig)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
