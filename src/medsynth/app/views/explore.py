"""Explore: a processed dataset's manifest with filters, thumbnails and report text; its rejects with reasons."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from .. import outputs
from ..shell import cached_manifest

PAGE_SIZE = 12
TABLE_ROWS = 1000
TABLE_COLUMNS = ["id", "patient_id", "split", "view", "labels", "prompt"]


def render(results: Path) -> None:
    st.title("Explore")
    names = outputs.datasets(results)
    if not names:
        st.info(f"No processed dataset yet in `{Path(results) / 'data'}`: run `make demo`.")
        return
    dataset = st.selectbox("Dataset", names, key="exp_dataset")
    df = cached_manifest(results, dataset)
    labels = outputs.label_columns(df)
    c1, c2, c3, c4 = st.columns(4)
    splits = c1.multiselect("Split", sorted(df["split"].dropna().unique()), key=f"exp_split_{dataset}")
    views = []
    if "view" in df.columns:
        views = c2.multiselect("View", sorted(v for v in df["view"].dropna().unique() if v),
                               key=f"exp_view_{dataset}")
    label = c3.selectbox("Label", labels, index=None, key=f"exp_label_{dataset}", placeholder="any")
    state = c4.selectbox("Label state", list(outputs.LABEL_STATES), key=f"exp_state_{dataset}",
                         disabled=label is None)
    text = st.text_input("Report contains", key=f"exp_text_{dataset}")
    rows = outputs.filter_manifest(df, splits, views, label, state, text)
    tab_rows, tab_rejects = st.tabs([f"Rows ({len(rows)} of {len(df)})", "Rejects"])
    with tab_rows:
        _rows(results, rows, labels, dataset)
    with tab_rejects:
        rej = outputs.rejects(results, dataset)
        if rej.empty:
            st.success("No rejected inputs: every input row was converted.")
        else:
            st.markdown(f"**{len(rej)} rejected inputs** (inputs = outputs + rejects), by reason:")
            st.dataframe(rej["reason"].value_counts().rename_axis("reason").reset_index(name="rows"),
                         hide_index=True)
            st.dataframe(rej[[c for c in ("id", "reason", "detail") if c in rej.columns]], hide_index=True)


def _rows(results: Path, rows, labels: list[str], dataset: str) -> None:
    if rows.empty:
        st.warning("No row matches these filters.")
        return
    head = rows.head(TABLE_ROWS)  # a full-size manifest (377k rows) is browsed by filtering, not scrolling
    table = head.assign(labels=[outputs.positive_labels(r, labels) for _, r in head.iterrows()])
    st.dataframe(table[[c for c in TABLE_COLUMNS if c in table.columns]], hide_index=True)
    if len(rows) > TABLE_ROWS:
        st.caption(f"First {TABLE_ROWS:,} of {len(rows):,} matching rows: filter to narrow them down.")
    if "image" in rows.columns:
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        page = st.number_input("Thumbnail page", min_value=1, max_value=pages, value=1, key=f"exp_page_{dataset}")
        chunk = rows.iloc[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        shown = [(outputs.image_path(results, r["image"]), str(r["id"])) for _, r in chunk.iterrows()]
        shown = [(p, c) for p, c in shown if p is not None]
        if shown:
            st.image([str(p) for p, _ in shown], caption=[c for _, c in shown], width=128)
    picked = st.selectbox("Row", head["id"].astype(str).tolist(), key=f"exp_row_{dataset}")
    row = rows[rows["id"].astype(str) == picked].iloc[0]
    left, right = st.columns([1, 2])
    path = outputs.image_path(results, row.get("image")) if "image" in rows.columns else None
    if path is not None:
        left.image(str(path), caption=picked, width=256)
    for section in ("findings", "impression", "prompt"):
        if isinstance(row.get(section), str) and row.get(section):
            right.markdown(f"**{section.capitalize()}**")
            right.write(row[section])
    positive = outputs.positive_labels(row, labels)
    if labels:
        right.markdown(f"**Positive labels:** {positive or 'none'}")
