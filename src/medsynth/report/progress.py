"""The live index: while a run goes on, results/report/index.html says per paper whether its page is done, its
jobs are running, or nothing of it has started, so a user looks at finished pages while the rest runs. Written when
the run starts (Snakefile `onstart`) and after every paper page; the report_index rule replaces it with the final
index at the end. A final index is never overwritten by a live one.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

from ..io import atomic_path
from .profile import paper_of
from .render import CSS

LIVE_MARK = "<meta name='medsynth-index' content='live'>"


def paper_status(results: str | Path, paper: str, cells: list[str]) -> str:
    """done | running | not started | not enabled (the config measures nothing of it)."""
    results = Path(results)
    if not cells:
        return "not enabled"
    if (results / "report" / f"{paper}.html").is_file():
        return "done"
    if any(Path(c).is_file() for c in cells):
        return "running"
    logs = results / "logs"
    if logs.is_dir():
        for rule_dir in logs.iterdir():
            if rule_dir.is_dir() and any(paper_of(rule_dir.name, str(f.relative_to(rule_dir)), (paper,)) == paper
                                         for f in rule_dir.rglob("*.log")):
                return "running"
    return "not started"


def is_live(index: Path) -> bool:
    return index.is_file() and LIVE_MARK in index.read_text(errors="replace")[:2000]


def write_live_index(results: str | Path, cells_by_paper: dict[str, list[str]], scale: str) -> bool:
    """Write the live index unless the final one is there; True when written."""
    index = Path(results) / "report" / "index.html"
    if index.is_file() and not is_live(index):
        return False
    e = html.escape
    rows = []
    for paper, cells in cells_by_paper.items():
        status = paper_status(results, paper, cells)
        link = f"<a href='{e(paper)}.html'>{e(paper)}</a>" if status == "done" else e(paper)
        measured = sum(Path(c).is_file() for c in cells)
        rows.append(f"<tr><td>{link}</td><td class='status-{status.replace(' ', '-')}'>{e(status)}</td>"
                    f"<td>{measured} / {len(cells)}</td></tr>")
    page = ["<!doctype html><html><head><meta charset='utf-8'>", LIVE_MARK,
            "<meta http-equiv='refresh' content='30'><title>medsynth run (in progress)</title>",
            f"<style>{CSS}</style></head><body><h1>medsynth run: in progress</h1>",
            f"<p class='scale'>scale: {e(scale)}. This page refreshes every 30 s; each paper's page is linked as soon "
            "as its jobs finish, and the final index replaces this page when the run ends.</p>",
            "<table><tr><th>paper</th><th>status</th><th>measured result files</th></tr>", *rows,
            "</table></body></html>"]
    index.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(index) as tmp:
        tmp.write_text("\n".join(page))
    # Dated 1970 on purpose: older than every page, so Snakemake never takes a live index for report_index's output.
    os.utime(index, (0, 0))
    return True
