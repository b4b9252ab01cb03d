"""Counterfactual: an image, a target prompt and a strength -> the SDEdit edit (medsynth.sampling.img2img) and its
visual attribution map (medsynth.attribution.difference_map), with any trained ldm2d model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from ...attribution import difference_map
from ...errors import MedsynthError, RejectedInput
from .. import outputs
from ..enhance import decode
from ..models import LDM2D, list_models, png_with_settings
from ..shell import NO_MODEL, cached_manifest, cached_model

UPLOAD, DATASET = "Upload", "From a dataset"


def _heatmap(va: np.ndarray) -> np.ndarray:
    """VA map -> RGB uint8 (inferno), scaled to its own maximum (the absolute maximum is printed beside it)."""
    from matplotlib import colormaps

    scaled = va / va.max() if va.max() > 0 else va
    return (colormaps["inferno"](scaled)[..., :3] * 255).round().astype(np.uint8)


def _input_image(results: Path):
    source = st.radio("Image", [UPLOAD, DATASET], horizontal=True, key="cf_source")
    if source == UPLOAD:
        upload = st.file_uploader("Radiograph (PNG, JPEG or DICOM)", key="cf_upload")
        if upload is None:
            return None, ""
        levels, _ = decode(upload.getvalue())  # RejectedInput handled by the caller
        return levels.astype(np.float32) / 65535.0, upload.name
    names = [d for d in outputs.datasets(results) if outputs.has_images(results, d)]
    if not names:
        st.info("No processed image dataset in this results folder: upload an image instead.")
        return None, ""
    dataset = st.selectbox("Dataset", names, key="cf_dataset")
    df = cached_manifest(results, dataset)
    df = df[df["image"].notna()]
    row_id = st.selectbox("Row", df["id"].astype(str).tolist(), key=f"cf_row_{dataset}")
    row = df[df["id"].astype(str) == row_id].iloc[0]
    path = outputs.image_path(results, row["image"])
    if path is None:
        st.warning(f"{row_id}: its processed image is missing")
        return None, ""
    if isinstance(row.get("prompt"), str):
        st.caption(f"Its report: {row['prompt'][:200]}")
    levels, _ = decode(path.read_bytes())
    return levels.astype(np.float32) / 65535.0, row_id


def render(results: Path) -> None:
    st.title("Counterfactual")
    st.caption("SDEdit: the image is noised to the strength's level and denoised towards the target prompt; the VA "
               "map is the smoothed |edit - original| (siddiqui2023).")
    models = [m for m in list_models(results) if m.can_sample and m.family == LDM2D]
    if not models:
        st.info(NO_MODEL.format(models=Path(results) / "models"))
        return
    names = [m.name for m in models]
    info = models[names.index(st.selectbox("Model", names, key="cf_model"))]
    try:
        image, label = _input_image(results)
    except RejectedInput as err:
        st.error(f"Cannot use this image: {err.reason}" + (f" ({err.detail})" if err.detail else ""))
        return
    prompt = st.text_area("Target prompt", key="cf_prompt", placeholder="e.g. Large right pleural effusion.")
    c1, c2, c3, c4, c5 = st.columns(5)
    strength = c1.slider("Strength", min_value=0.05, max_value=1.0, value=0.6, step=0.05, key="cf_strength")
    seed = c2.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="cf_seed")
    steps = c3.number_input("Steps", min_value=1, max_value=1000, value=50, key="cf_steps")
    guidance = c4.number_input("Guidance", min_value=0.0, max_value=50.0, value=7.5, step=0.5, key="cf_guidance")
    sigma = c5.number_input("VA smoothing σ (px)", min_value=0.0, max_value=20.0, value=1.0, step=0.5,
                            key="cf_sigma")
    if st.button("Edit", type="primary", key="cf_go", disabled=image is None):
        try:
            with st.spinner("Editing..."):
                edit = cached_model(info).edit(image, prompt, strength=strength, seed=int(seed), steps=int(steps),
                                               guidance=float(guidance))
        except MedsynthError as err:
            st.error(str(err))
            return
        st.session_state["cf_result"] = (edit, label, float(sigma))
    if st.session_state.get("cf_result") is not None:
        _show(*st.session_state["cf_result"])


def _show(edit, label: str, sigma: float) -> None:
    va = difference_map(edit.original, edit.edited, sigma=sigma)
    a, b, c = st.columns(3)
    a.image(edit.original, caption=f"original ({label})", width=256, clamp=True)
    b.image(edit.edited, caption=f"counterfactual: {edit.settings['prompt'][:60]}", width=256, clamp=True)
    c.image(_heatmap(va), caption=f"VA map (σ = {sigma:g} px, max |Δ| = {va.max():.3f})", width=256)
    st.caption(f"{edit.steps_run} denoising steps in {edit.seconds:.2f} s")
    st.code(json.dumps(edit.settings, indent=2), language="json")
    png = png_with_settings((np.clip(edit.edited, 0, 1) * 255).round().astype(np.uint8), edit.settings)
    st.download_button("Download counterfactual PNG", png, file_name="counterfactual.png", mime="image/png",
                       key="cf_download")
