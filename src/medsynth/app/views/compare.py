"""Compare: each paper's tables (measured beside published, provenance on hover and on click), sample grids,
per-model training curves and the workflow's figures."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from .. import outputs
from ..models import list_models


def render(results: Path) -> None:
    st.title("Compare")
    tables, grids, curves, figs = st.tabs(["Paper tables", "Sample grids", "Training curves", "Figures"])
    with tables:
        _tables(results)
    with grids:
        _grids(results)
    with curves:
        _curves(results)
    with figs:
        _figures(results)


def _tables(results: Path) -> None:
    cells = outputs.paper_cells(results)
    if not cells:
        st.info(f"No measured table cells yet under `{Path(results) / 'eval'}`: run `make demo`.")
        return
    paper = st.selectbox("Paper", sorted(cells), key="cmp_paper")
    st.caption("Each cell: measured ± spread [provenance note] / published (Δ). Hover a measured cell for how it "
               "was measured, or open a note below. † = labelled stand-in backbone, not comparable with the paper.")
    for view in outputs.table_views(paper, cells[paper]):
        st.subheader(view.title)
        st.markdown(outputs.table_html(view), unsafe_allow_html=True)
        if view.notes:
            st.caption(view.notes)
        if view.provenance:
            with st.expander(f"Provenance of {len(view.provenance)} measured cells"):
                note = st.selectbox("Note", range(1, len(view.provenance) + 1), key=f"cmp_note_{paper}_{view.id}",
                                    format_func=lambda i: f"[{i}]")
                st.json(view.provenance[note - 1])


def _grids(results: Path) -> None:
    sets = outputs.sample_sets(results)
    if not sets:
        st.info(f"No sample sets yet under `{Path(results) / 'samples'}`.")
        return
    labels = [f"{m} / {s}" for m, s, _ in sets]
    picked = st.selectbox("Sample set", labels, key="cmp_set")
    table = sets[labels.index(picked)][2]
    n = st.slider("Images", min_value=1, max_value=32, value=8, key="cmp_n")
    grid = outputs.sample_grid(table, n)
    if not grid:
        st.warning(f"{picked}: samples.csv lists no image that exists")
        return
    st.image([str(p) for p, _ in grid], caption=[c for _, c in grid], width=128)


def _curves(results: Path) -> None:
    shown = 0
    for info in list_models(results):
        curves = outputs.training_curves(info.path)
        if not curves:
            continue
        shown += 1
        st.subheader(info.name)
        cols = st.columns(len(curves))
        for col, (stage, frame) in zip(cols, curves.items()):
            col.markdown(f"**{stage}** stage: {len(frame)} steps, final train loss {frame['train loss'].iloc[-1]:.4g}")
            col.line_chart(frame)
    if not shown:
        st.info(f"No logged training losses yet under `{Path(results) / 'models'}`.")


def _figures(results: Path) -> None:
    figs = outputs.figures(results)
    if not figs:
        st.info(f"No figures yet under `{Path(results) / 'figures'}`.")
        return
    group = st.selectbox("Figures of", list(figs), key="cmp_figs")
    for path in figs[group]:
        st.image(str(path), caption=path.name)
