"""Enhance: an uploaded radiograph (PNG / JPEG / DICOM) through the workflow's windowing and CLAHE."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ...errors import RejectedInput
from ...preprocess.images import PREPROCESS_DEFAULTS
from ..enhance import config_preprocess, decode, enhance, png_bytes, settings, to_display
from ..shell import config_files

DEFAULTS = "workflow defaults (schema)"


def _file_window(upload) -> tuple[float, float]:
    """The uploaded DICOM's first window (the widgets' starting values), else a 12-bit full-range window."""
    meta = {}
    if upload is not None:
        try:
            meta = decode(upload.getvalue())[1]
        except RejectedInput:
            pass  # reported once below, where the image is converted
    try:
        centre, width = (float(_first(meta[k])) for k in ("WindowCenter", "WindowWidth"))
        return (centre, width) if width >= 1 else (2048.0, 4096.0)
    except (KeyError, TypeError, ValueError):
        return 2048.0, 4096.0


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def render(results: Path) -> None:
    st.title("Enhance")
    st.caption("The workflow's own intensity chain: DICOM modality LUT -> VOI window (the file's, or yours) -> "
               "square resize -> bit depth -> CLAHE on the image content (medsynth.preprocess).")
    upload = st.file_uploader("Radiograph (PNG, JPEG or DICOM)", key="enh_upload", type=None)
    try:
        presets = config_preprocess(config_files())
    except Exception as err:  # a broken config file must not take the page down: say which and go on
        st.warning(f"Could not read the config files for dataset settings: {err}")
        presets = {}
    preset = st.selectbox("Settings from", [DEFAULTS, *presets], key="enh_preset",
                          help="a dataset's preprocess block from the config files the app was started with")
    pp = presets.get(preset, {**PREPROCESS_DEFAULTS, "clahe": dict(PREPROCESS_DEFAULTS["clahe"])})
    c1, c2, c3, c4 = st.columns(4)
    clahe_on = c1.checkbox("CLAHE", value=bool(pp["clahe"]["enabled"]), key=f"enh_clahe_{preset}")
    clip = c2.number_input("Clip limit", min_value=0.1, max_value=40.0, value=float(pp["clahe"]["clip_limit"]),
                           step=0.5, key=f"enh_clip_{preset}")
    tiles = c3.number_input("Tile grid (n x n)", min_value=1, max_value=64, value=int(pp["clahe"]["tile_grid"][0]),
                            step=1, key=f"enh_tiles_{preset}")
    size = c4.number_input("Image size", min_value=16, max_value=4096, value=int(pp["image_size"]), step=16,
                           key=f"enh_size_{preset}")
    d1, d2, d3, d4 = st.columns(4)
    modes = ["pad", "crop", "stretch"]
    resize = d1.selectbox("Resize", modes, index=modes.index(pp["resize"]), key=f"enh_resize_{preset}")
    bit_depth = d2.selectbox("Bit depth", [8, 16], index=[8, 16].index(int(pp["bit_depth"])),
                             key=f"enh_bits_{preset}")
    file_window = _file_window(upload)
    own_window = d3.checkbox("My window (DICOM)", value=False, key="enh_window_on")
    centre = d4.number_input("Window centre", value=file_window[0], key=f"enh_centre_{file_window}",
                             disabled=not own_window, help="starts at the file's own window, when it has one")
    width = d4.number_input("Window width", value=file_window[1], min_value=1.0, key=f"enh_width_{file_window}",
                            disabled=not own_window)
    if upload is None:
        st.info("Upload a radiograph to enhance it.")
        return
    chosen = settings(size, resize, bit_depth, clip, (tiles, tiles), clahe_on)
    try:
        out = enhance(upload.getvalue(), chosen, (centre, width) if own_window else None)
    except RejectedInput as err:
        st.error(f"Cannot use {upload.name}: {err.reason}" + (f" ({err.detail})" if err.detail else ""))
        return
    left, right = st.columns(2)
    left.image(to_display(out.before), caption="without CLAHE", width=384)
    right.image(to_display(out.after), caption="enhanced" if clahe_on else "CLAHE off", width=384)
    right.download_button("Download enhanced PNG", png_bytes(out.after), file_name="enhanced.png",
                          mime="image/png", key="enh_download")
    st.markdown("**Settings applied**")
    st.code(json.dumps({"preprocess": chosen, "voi": out.meta.get("voi", ""), "format": out.meta.get("format")},
                       indent=2), language="json")
    with st.expander("Header fields (allow-listed, no patient data)"):
        st.json({k: v for k, v in out.meta.items() if k not in ("voi",)})
