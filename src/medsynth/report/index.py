"""The run's index page: scale note, datasets (inputs / outputs / rejects), and each paper's measured coverage."""
from __future__ import annotations

import html
import json
from pathlib import Path

from .published import load_published
from .render import CSS, scale_note, stand_in_of


def paper_coverage(paper: str, cells: list[dict]) -> tuple[int, int]:
    """(measured cells that sit in a published table position, published cells)."""
    pub = load_published(paper)
    published = {(t["id"], r, c) for t in pub["tables"] for r, vals in t["rows"].items()
                 for c, v in zip(t["columns"], vals) if v is not None}
    measured = {(c["table"], c["row"], c["column"]) for c in cells if c["paper"] == paper}
    return len(published & measured), len(published)


def stand_in_cells(cells: list[dict]) -> int:
    """Measured cells computed with a labelled stand-in backbone."""
    return sum(1 for c in cells if stand_in_of(c.get("provenance", {})))


def build_index(papers: dict[str, list[dict]], summaries: list[Path], scale: str, configs: list[str]) -> tuple[str, str]:
    """Markdown and HTML of the index. `papers` maps paper -> its measured cells."""
    config_name = ", ".join(configs)
    rows = []
    for path in summaries:
        s = json.loads(Path(path).read_text())
        reasons = "; ".join(f"{k}: {v}" for k, v in s.get("reject_reasons", {}).items()) or "—"
        rows.append((s.get("dataset", Path(path).parent.name), s["inputs"], s["output_rows"], s["rejects"], reasons))
    md = ["# medsynth run", "", scale_note(scale, config_name), "", "## Datasets", "",
          "| dataset | inputs | output rows | rejects | reject reasons |", "|---|---|---|---|---|"]
    md += [f"| {d} | {i} | {o} | {r} | {why} |" for d, i, o, r, why in rows]
    md += ["", "## Papers", "", "| paper | measured / published cells | stand-in cells (†) | page |",
           "|---|---|---|---|"]
    cov = {p: paper_coverage(p, cells) for p, cells in papers.items()}
    stand = {p: stand_in_cells(cells) for p, cells in papers.items()}
    for p, (m, n) in cov.items():
        md.append(f"| {p} | {m} / {n} | {stand[p]} | [{p}.html]({p}.html) |")
    note = ("† A stand-in cell was computed with a feature network named explicitly in the config because the "
            "real weights are absent (e.g. inception-random: pytorch-fid's Inception with seeded random weights); "
            "it is not comparable with the paper's value.")
    if any(stand.values()):
        md += ["", note]
    e = html.escape
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>medsynth run</title><style>{CSS}</style></head><body>",
         "<h1>medsynth run</h1>", f"<p class='scale'>{e(scale_note(scale, config_name)).replace('**', '')}</p>",
         "<h2>Datasets</h2><table><tr><th>dataset</th><th>inputs</th><th>output rows</th><th>rejects</th><th>reject reasons</th></tr>"]
    h += [f"<tr><td>{e(str(d))}</td><td>{i}</td><td>{o}</td><td>{r}</td><td>{e(why)}</td></tr>" for d, i, o, r, why in rows]
    h += ["</table><h2>Papers</h2><table><tr><th>paper</th><th>measured / published cells</th>"
          "<th>stand-in cells (†)</th></tr>"]
    h += [f"<tr><td><a href='{e(p)}.html'>{e(p)}</a></td><td>{m} / {n}</td><td>{stand[p]}</td></tr>"
          for p, (m, n) in cov.items()]
    h += ["</table>"] + ([f"<p class='standin-banner'>{e(note)}</p>"] if any(stand.values()) else [])
    h += ["</body></html>"]
    return "\n".join(md) + "\n", "\n".join(h)
