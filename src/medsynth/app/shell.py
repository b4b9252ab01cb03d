"""Page navigation, the sidebar (results folder) and what pages share (the cached model loader)."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from . import CONFIG_ENV, RESULTS_ENV, outputs
from .models import ModelInfo, describe, fingerprint, load_model

NO_MODEL = ("No trained model yet in `{models}`: run `make demo` (or train one model: "
            "`snakemake --cores 2 {models}/<model>/pipeline/unet/config.json`).")


def default_results() -> str:
    return os.environ.get(RESULTS_ENV, "results")


def config_files() -> list[Path]:
    value = os.environ.get(CONFIG_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def sidebar() -> Path:
    """The results folder the pages read (editable in the sidebar)."""
    st.sidebar.markdown("**medsynth**: synthetic medical images from the workflow's outputs")
    value = st.sidebar.text_input("Results folder", value=default_results(), key="results_dir",
                                  help="the `results:` folder of a workflow run")
    results = Path(value).expanduser()
    if not results.is_dir():
        st.sidebar.warning(f"{results} does not exist yet")
    return results


@st.cache_resource(show_spinner="Loading the model (once; later runs reuse it)...", max_entries=4)
def _load(path: str, stamp: str):
    from ..devices import job_device

    return load_model(describe(Path(path)), device=job_device())


def cached_model(info: ModelInfo):
    """The model loaded once and kept (reloaded only when its files change)."""
    return _load(str(info.path), fingerprint(info))


@st.cache_data(max_entries=8, show_spinner=False)
def _manifest(results: str, dataset: str, stamp: int):
    return outputs.manifest(Path(results), dataset)


def cached_manifest(results: Path, dataset: str):
    """A processed dataset's manifest, read once per file version (reruns happen at every widget change)."""
    stamp = (Path(results) / "data" / dataset / "manifest.parquet").stat().st_mtime_ns
    return _manifest(str(results), dataset, stamp)


def _pages() -> dict:
    from .views import compare, counterfactual, enhance, explore, generate

    return {"generate": ("Generate", ":material/auto_awesome:", generate.render),
            "enhance": ("Enhance", ":material/contrast:", enhance.render),
            "explore": ("Explore", ":material/table_view:", explore.render),
            "compare": ("Compare", ":material/leaderboard:", compare.render),
            "counterfactual": ("Counterfactual", ":material/compare:", counterfactual.render)}


def main() -> None:
    st.set_page_config(page_title="medsynth", page_icon=":material/radiology:", layout="wide")
    results = sidebar()

    def page(render):
        return lambda: render(results)

    pages = [st.Page(page(render), title=title, icon=icon, url_path=name, default=name == "generate")
             for name, (title, icon, render) in _pages().items()]
    st.navigation(pages).run()


def run_page(name: str) -> None:
    """One page without the navigation (the AppTest tests drive pages one at a time)."""
    _pages()[name][2](sidebar())
