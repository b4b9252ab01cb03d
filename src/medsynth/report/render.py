"""Render a paper's report (Markdown and HTML): published tables with measured values, differences, provenance."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from ..metrics.stand_ins import STAND_INS, is_stand_in
from .published import load_published

STAND_IN_MARK = "†"
# provenance keys printed first (what a reader needs to judge a number), the rest follow in their own order
PROVENANCE_ORDER = ("backbone", "stand_in", "weights", "weights_sha256", "dataset", "split", "n", "n_reference",
                    "method", "resize_mode", "resize", "scale", "seed")


@dataclass
class Cell:
    published: float | None
    measured: float | None = None
    std: float | None = None
    note: int | None = None        # footnote number of the provenance
    stand_in: str | None = None    # the stand-in backbone that produced `measured` (labelled, Δ not printed)


@dataclass
class SideBySide:
    id: str
    title: str
    columns: list[str]
    rows: dict[str, list[Cell]]
    notes: str = ""
    provenance: list[dict] = field(default_factory=list)
    compared: dict[str, str] = field(default_factory=dict)  # measured row -> the published row it reproduces

    @property
    def stand_ins(self) -> list[str]:
        return sorted({c.stand_in for cells in self.rows.values() for c in cells if c.stand_in})


def stand_in_of(provenance: dict) -> str | None:
    """The backbone name when a cell was computed with a labelled stand-in, else None."""
    backbone = provenance.get("backbone")
    if provenance.get("stand_in") or is_stand_in(backbone):
        return str(backbone or "stand-in")
    return None


def stand_in_description(backbone: str) -> str:
    return STAND_INS.get(backbone.split(":")[0], "a labelled stand-in for the paper's feature network")


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def _fmt_published(x: float | int | None) -> str:
    """A published number as the paper printed it (221.99 stays 221.99): shortest round-trip text, no rounding."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    text = repr(x) if isinstance(x, int) else repr(float(x))
    return text[:-2] if text.endswith(".0") else text


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
            if c.get("reproduces"):
                if c["reproduces"] not in t["rows"]:
                    raise ValueError(f"{paper}/{t['id']}: cell reproduces row {c['reproduces']!r}, which the paper's "
                                     f"table lacks (rows: {list(t['rows'])})")
                if c["row"] not in t["rows"]:
                    cell.published = t["rows"][c["reproduces"]][cols.index(c["column"])]
                    table.compared[c["row"]] = c["reproduces"]
            table.provenance.append(c["provenance"])
            cell.measured, cell.std, cell.note = c["value"], c.get("std"), len(table.provenance)
            cell.stand_in = stand_in_of(c["provenance"])
        out.append(table)
    return out


def _cell_text(cell: Cell) -> str:
    measured = _fmt(cell.measured)
    if cell.std is not None:
        measured += f" ± {_fmt(cell.std, 2)}"
    if cell.stand_in:
        measured += STAND_IN_MARK
    if cell.note:
        measured += f" [{cell.note}]"
    diff = ""
    if cell.measured is not None and cell.published is not None:
        diff = (f" (Δ not comparable: stand-in {cell.stand_in})" if cell.stand_in
                else f" (Δ {cell.measured - cell.published:+.3g})")
    return f"{measured} / {_fmt_published(cell.published)}{diff}"


def _provenance_value(key: str, value) -> str:
    if key == "weights_sha256" and isinstance(value, str) and len(value) > 12:
        return value[:12] + "…"
    if key == "stand_in":
        return "YES (labelled stand-in, not comparable with the paper)" if value else "no"
    return str(value)


def _provenance_line(i: int, p: dict) -> str:
    keys = [k for k in PROVENANCE_ORDER if k in p] + [k for k in p if k not in PROVENANCE_ORDER]
    return f"[{i}] " + "; ".join(f"{k}: {_provenance_value(k, p[k])}" for k in keys)


def data_summary(tables: list[SideBySide]) -> str | None:
    """'Measured on: <dataset> [<split>] (N = a-b per cell), ...' from the cells' provenance."""
    groups: dict[str, list[int]] = {}
    for t in tables:
        for p in t.provenance:
            key = str(p.get("dataset", "?")) + (f" [{p['split']}]" if p.get("split") else "")
            if isinstance(p.get("n"), (int, float)):
                groups.setdefault(key, []).append(int(p["n"]))
    if not groups:
        return None
    parts = [f"{k} (N = {min(v)}{'' if min(v) == max(v) else f'-{max(v)}'} per cell)" for k, v in groups.items()]
    return "Measured on: " + ", ".join(parts) + "."


def stand_in_legend(backbones) -> list[str]:
    return [f"{STAND_IN_MARK} {b}: {stand_in_description(b)}." for b in backbones]


def stand_in_banner(tables: list[SideBySide]) -> str | None:
    used = sorted({b for t in tables for b in t.stand_ins})
    if not used:
        return None
    n = sum(1 for t in tables for cells in t.rows.values() for c in cells if c.stand_in)
    return (f"{n} measured cell(s) marked {STAND_IN_MARK} were computed with a STAND-IN feature network "
            f"({', '.join(used)}), named explicitly in the config because the real weights are absent; their "
            "differences to the published values are not printed.")


def scale_note(scale: str, config_name: str) -> str:
    if scale == "paper":
        return f"Scale: paper-scale configuration ({config_name})."
    return (f"Scale: **{scale}** run ({config_name}) on the embedded phantom / bundled data at small size. "
            "These numbers check that each pipeline runs and behaves; they are NOT a reproduction of the "
            "paper-scale values printed beside them.")


def judge_rows(card: dict) -> list[list[str]]:
    """The judge's own held-out record, one row per label: AUC [95% CI] (positives/negatives), threshold, status."""
    from ..classifier.judge import heldout_table, judge_provenance

    prov, table = judge_provenance(card), heldout_table(card)
    rows = []
    for label in card.get("labels", []):
        if label not in table:
            continue
        status = f"REFUSED: {prov['refused'][label]}" if label in prov["refused"] else "scored"
        rows.append([label, prov["heldout_auc"][label], f"{prov['thresholds'][label]:.3g}", status])
    return rows


JUDGE_COLUMNS = ["label", "held-out AUC [95% CI] (pos/neg)", "threshold", "status"]


def judge_intro(card: dict) -> str:
    return (f"The classifier that scored images on this page ({card.get('dataset', '?')}: {card.get('arch', '?')}, "
            f"weights sha256 {str(card.get('weights_sha256', '?'))[:12]}…) was trained on {card.get('trained_on', '?')}"
            f" and tested on its own held-out split, {card.get('heldout_split', 'test')}. AUC intervals: percentile "
            f"bootstrap over images ({next(iter(card.get('heldout', {}).values()), {}).get('n_boot', '?')} "
            f"resamples). Thresholds: Youden's J on its validation split. Labels below the floor "
            f"{card.get('auc_floor', '?')} are refused, not scored.")


def to_markdown(paper: str, tables: list[SideBySide], scale: str, config_name: str, figures: list[str] = (),
                judges: list[dict] = ()) -> str:
    pub = load_published(paper)
    lines = [f"# {pub['title']}", "", scale_note(scale, config_name), "",
             "Each cell: measured [provenance] / published (Δ = measured − published); — = not measured / not published.", ""]
    summary = data_summary(tables)
    if summary:
        lines += [summary, ""]
    banner = stand_in_banner(tables)
    if banner:
        lines += [f"**{banner}**", ""]
    for t in tables:
        lines += [f"## {t.title}", "", "| | " + " | ".join(t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
        for row, cells in t.rows.items():
            lines.append(f"| {row} | " + " | ".join(_cell_text(c) for c in cells) + " |")
        if t.notes:
            lines += ["", f"*Note:* {t.notes}"]
        for ours, theirs in t.compared.items():
            lines += ["", f"Row '{ours}' shows the published values of row '{theirs}' beside the measured ones."]
        if t.stand_ins:
            lines += [""] + [f"{x}  " for x in stand_in_legend(t.stand_ins)]
        if t.provenance:
            lines += [""] + [_provenance_line(i + 1, p) + "  " for i, p in enumerate(t.provenance)]
        lines.append("")
    for card in judges:
        lines += ["## The judge: its own held-out accuracy", "", judge_intro(card), "",
                  "| " + " | ".join(JUDGE_COLUMNS) + " |", "|---" * len(JUDGE_COLUMNS) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in judge_rows(card)] + [""]
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #bbb;padding:4px 8px;font-size:13px}th{background:#eef}td.m{font-weight:600}"
       ".pub{color:#555}.scale{background:#fff3cd;padding:8px;border:1px solid #e0c36c}.prov{font-size:12px;color:#444}"
       "img{max-width:100%;border:1px solid #ccc;margin:6px 0}td.standin{background:#fde2e1}"
       ".standin-banner{background:#fde2e1;padding:8px;border:1px solid #d9534f}")


def to_html(paper: str, tables: list[SideBySide], scale: str, config_name: str, figures: list[str] = (),
            judges: list[dict] = ()) -> str:
    pub = load_published(paper)
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(paper)}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(pub['title'])}</h1>", f"<p class='scale'>{e(scale_note(scale, config_name)).replace('**', '')}</p>",
             "<p>Each cell: <b>measured</b> [provenance] / <span class='pub'>published</span> (Δ).</p>"]
    summary = data_summary(tables)
    if summary:
        parts.append(f"<p>{e(summary)}</p>")
    banner = stand_in_banner(tables)
    if banner:
        parts.append(f"<p class='standin-banner'>{e(banner)}</p>")
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2><table><tr><th></th>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr>")
        for row, cells in t.rows.items():
            parts.append(f"<tr><th>{e(row)}</th>" + "".join(
                f"<td{' class=standin' if c.stand_in else ''}>{e(_cell_text(c))}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
        if t.notes:
            parts.append(f"<p><i>Note:</i> {e(t.notes)}</p>")
        for ours, theirs in t.compared.items():
            parts.append(f"<p>Row '{e(ours)}' shows the published values of row '{e(theirs)}' beside the measured "
                         "ones.</p>")
        if t.stand_ins:
            parts.append("<p class='prov'>" + "<br>".join(e(x) for x in stand_in_legend(t.stand_ins)) + "</p>")
        if t.provenance:
            parts.append("<div class='prov'>" + "<br>".join(e(_provenance_line(i + 1, p)) for i, p in enumerate(t.provenance)) + "</div>")
    for card in judges:
        parts.append(f"<h2>The judge: its own held-out accuracy</h2><p>{e(judge_intro(card))}</p><table><tr>"
                     + "".join(f"<th>{e(c)}</th>" for c in JUDGE_COLUMNS) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in judge_rows(card)]
        parts.append("</table>")
    for fig in figures:
        parts.append(f"<figure><img src='{e(fig)}' alt='{e(fig)}'><figcaption>{e(fig)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
