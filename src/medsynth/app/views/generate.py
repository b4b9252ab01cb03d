"""Generate: a trained model, a report (typed or an example), seed / steps / guidance -> image, time, settings."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ...errors import MedsynthError
from ...sampling import SCHEDULERS
from ..models import example_prompts, list_models, png_with_settings
from ..shell import NO_MODEL, cached_model

FALLBACK_EXAMPLES = ["No acute cardiopulmonary process.", "Small left pleural effusion.",
                     "Cardiomegaly without pleural effusion.", "Right upper lobe nodule."]


def _use_example() -> None:
    choice = st.session_state.get("gen_example")
    if choice:
        st.session_state["gen_prompt"] = choice


def render(results: Path) -> None:
    st.title("Generate")
    models = list_models(results)
    usable = [m for m in models if m.can_sample]
    if not usable:
        st.info(NO_MODEL.format(models=Path(results) / "models"))
        for m in models:
            st.caption(f"{m.name}: {m.reason}")
        return
    names = [m.name for m in usable]
    name = st.selectbox("Model", names, key="gen_model", help="trained models in results/models/ that can sample")
    info = usable[names.index(name)]
    for m in models:
        if not m.can_sample:
            st.caption(f"Not listed: {m.name} ({m.reason})")
    examples = example_prompts(info, results) or FALLBACK_EXAMPLES
    st.selectbox("Example prompt", examples, index=None, key="gen_example", on_change=_use_example,
                 placeholder="pick one, or type a report below")
    prompt = st.text_area("Report / prompt", key="gen_prompt", height=100,
                          placeholder="e.g. Small left pleural effusion.")
    c1, c2, c3, c4 = st.columns(4)
    seed = c1.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="gen_seed")
    steps = c2.number_input("Steps", min_value=1, max_value=1000, value=50, step=1, key="gen_steps")
    guidance = c3.number_input("Guidance", min_value=0.0, max_value=50.0, value=7.5, step=0.5, key="gen_guidance")
    sampler = c4.selectbox("Sampler", ["(the model's)", *SCHEDULERS], key="gen_sampler")
    negative = st.text_input("Negative prompt", value="", key="gen_negative")
    if st.button("Generate", type="primary", key="gen_go"):
        if not prompt.strip():
            st.warning("Type a report or pick an example prompt first.")
        else:
            _generate(info, prompt, seed, steps, guidance, None if sampler.startswith("(") else sampler, negative)
    shown = st.session_state.get("gen_result")
    if shown is not None:
        _show(shown)


def _generate(info, prompt, seed, steps, guidance, sampler, negative) -> None:
    bar = st.progress(0.0, text="Generating...")
    try:
        model = cached_model(info)
        result = model.generate(prompt, seed=int(seed), steps=int(steps), guidance=float(guidance), sampler=sampler,
                                negative_prompt=negative,
                                on_step=lambda i, n: bar.progress(i / n, text=f"Denoising step {i}/{n}"))
    except MedsynthError as err:
        bar.empty()
        st.error(str(err))
        return
    bar.empty()
    st.session_state["gen_result"] = result


def _show(result) -> None:
    s = result.settings
    left, right = st.columns([1, 1])
    left.image(result.image, caption=f"{s['model']}: {s['prompt'][:80]}", width=384)
    right.metric("Time", f"{result.seconds:.2f} s")
    right.markdown("**Settings** (stored in the PNG's `medsynth` text chunk)")
    right.code(json.dumps(s, indent=2), language="json")
    right.download_button("Download PNG", png_with_settings(result.image, s), key="gen_download",
                          file_name=f"{s['model']}_seed{s['seed']}.png", mime="image/png")
