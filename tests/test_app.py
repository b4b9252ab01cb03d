"""The interactive app: its logic (models seam, results reader, enhance, VA map) and every page through
streamlit.testing.v1.AppTest (interactions, empty states, bad input). The real-browser test is test_app_browser.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from _app_fixtures import MODEL, PHI_NAME, dicom_bytes, make_results, png_bytes, radiograph, tiny_components
from medsynth import cli
from medsynth.app import RESULTS_ENV, outputs, streamlit_command
from medsynth.app.enhance import config_preprocess, decode, enhance, settings
from medsynth.app.models import describe, list_models, load_model, png_settings, png_with_settings
from medsynth.attribution import difference_map
from medsynth.errors import MedsynthError, RejectedInput
from medsynth.preprocess import dicom
from medsynth.preprocess.images import load_levels, render
from medsynth.sampling import img2img, txt2img

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest
TIMEOUT = 60


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture
def empty_results(tmp_path):
    return tmp_path


def _page(name):
    from medsynth.app.shell import run_page
    run_page(name)


def page(name: str, results, monkeypatch) -> AppTest:
    monkeypatch.setenv(RESULTS_ENV, str(results))
    return AppTest.from_function(_page, args=(name,), default_timeout=TIMEOUT)


def texts(at, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


# --- logic ---
def test_difference_map_localises_the_change():
    a = np.zeros((32, 32), np.float32)
    b = a.copy()
    b[10:14, 20:24] = 0.8
    va = difference_map(a, b, sigma=1.5)
    assert va.shape == (32, 32) and va.dtype == np.float32
    y, x = np.unravel_index(np.argmax(va), va.shape)
    assert 10 <= y < 14 and 20 <= x < 24
    assert va[:5, :5].max() < 1e-6 and abs(va.sum() - 0.8 * 16) < 0.05 * 0.8 * 16  # smoothing keeps the mass
    assert np.array_equal(difference_map(a, b, sigma=0), np.abs(b - a))
    assert difference_map(a[None], b[None], sigma=1.5).shape == (32, 32)  # (C, H, W) accepted
    assert not difference_map(b, b).any()
    with pytest.raises(ValueError, match="differ in shape"):
        difference_map(a, b[:16])
    with pytest.raises(ValueError, match="sigma"):
        difference_map(a, b, sigma=-1)


def test_models_listing_and_family_seam(results, tmp_path):
    infos = {m.name: m for m in list_models(results)}
    assert set(infos) == {MODEL, "halfway"}
    assert infos[MODEL].can_sample and infos[MODEL].family == "ldm2d"
    assert not infos["halfway"].can_sample and "diffusion stage" in infos["halfway"].reason
    (tmp_path / "models" / "vq").mkdir(parents=True)
    assert "no model the app can load" in describe(tmp_path / "models" / "vq").reason
    assert list_models(tmp_path / "nowhere") == []
    with pytest.raises(MedsynthError, match="cannot be sampled"):
        load_model(infos["halfway"])


TOY_FAMILY = """
from pathlib import Path
import numpy as np
from PIL import Image

def load(folder, device):
    return {"level": int((Path(folder) / "level.txt").read_text())}

def sample(model, table, out_dir, spec, results, device):
    for row in table.itertuples():
        rng = np.random.default_rng(row.seed)
        image = np.full((8, 8), model["level"], np.uint8) + rng.integers(0, 3, (8, 8), dtype=np.uint8)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(Path(out_dir) / row.file)
    return table.assign(steps=spec["steps"])
"""


def test_any_family_is_described_from_its_markers_and_samples_through_the_registry(tmp_path, monkeypatch):
    from medsynth import families

    (tmp_path / "toy_family_impl.py").write_text(TOY_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(families.FAMILIES, "toy", families.Family(kind="toy", module="toy_family_impl",
                                                                  stages=("first", "second")))
    models = tmp_path / "results" / "models"
    (models / "m" / "first").mkdir(parents=True)
    (models / "m" / "first" / "family.json").write_text(json.dumps({"kind": "toy", "stage": "first"}))
    info = describe(models / "m")
    assert info.family == "toy" and not info.can_sample and "second" in info.reason
    (models / "m" / "second").mkdir()
    (models / "m" / "second" / "level.txt").write_text("100")
    (models / "m" / "second" / "family.json").write_text(json.dumps({"kind": "toy", "stage": "second"}))
    info = describe(models / "m")
    assert info.can_sample and info.weights == models / "m" / "second"
    out = load_model(info).generate("Left pleural effusion.", seed=5, steps=3)
    want = 100 + np.random.default_rng(5).integers(0, 3, (8, 8), dtype=np.uint8)
    assert np.array_equal(out.image, want) and out.settings["family"] == "toy" and out.settings["steps"] == 3
    (models / "x" / "stage").mkdir(parents=True)
    (models / "x" / "stage" / "family.json").write_text(json.dumps({"kind": "nope"}))
    assert not describe(models / "x").can_sample and "not a registered family" in describe(models / "x").reason

def test_generate_is_the_workflow_sampler_and_png_carries_settings(results):
    model = load_model(describe(results / "models" / MODEL))
    steps = []
    out = model.generate("Left pleural effusion.", seed=3, steps=4, guidance=2.0, sampler="ddim",
                         on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    # the same image as the workflow's txt2img on the saved components (ddim from the training schedule)
    want = txt2img(**tiny_components(), prompts=["Left pleural effusion."], seeds=[3], num_inference_steps=4,
                   guidance_scale=2.0)[0, 0].numpy()
    assert out.image.shape == (32, 32) and np.abs(out.image / 255.0 - want).max() <= 1 / 255 + 1e-5
    again = model.generate("Left pleural effusion.", seed=3, steps=4, guidance=2.0, sampler="ddim")
    assert np.array_equal(again.image, out.image)  # same settings + seed -> same image
    assert out.settings["seed"] == 3 and out.settings["steps"] == 4 and out.settings["sampler"] == "ddim"
    data = png_with_settings(out.image, out.settings)
    assert png_settings(data) == json.loads(json.dumps(out.settings))
    assert str(results) not in data.decode("latin-1")  # no local path (user names) in the file
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(data))), out.image)
    with pytest.raises(MedsynthError, match="type a report"):
        model.generate("   ")
    with pytest.raises(MedsynthError, match="steps"):
        model.generate("x", steps=0)


def test_edit_is_the_workflow_img2img(results):
    import torch

    model = load_model(describe(results / "models" / MODEL))
    image = radiograph(32).astype(np.float32) / 255.0
    out = model.edit(image, "Cardiomegaly.", strength=0.5, seed=2, steps=4, guidance=2.0, sampler="ddim")
    x = torch.from_numpy(image * 2 - 1)[None, None]
    want = img2img(**tiny_components(), images=x, prompts=["Cardiomegaly."], seeds=[2], strength=0.5,
                   num_inference_steps=4, guidance_scale=2.0)
    assert out.steps_run == want.steps_run == 2
    assert np.allclose(out.edited, want.images[0, 0].numpy(), atol=1e-5)
    assert np.allclose(out.original, image)
    big = model.edit(radiograph(64).astype(np.float32) / 255.0, "x", strength=0.25, steps=4)
    assert big.original.shape == big.edited.shape == (32, 32)  # resized to the model's resolution


def test_enhance_is_the_workflow_render(tmp_path):
    img = radiograph(48)
    (tmp_path / "x.png").write_bytes(png_bytes(img))
    pp = settings(image_size=32, clip_limit=3.0, tile_grid=(4, 4))
    out = enhance(png_bytes(img), pp)
    levels, _ = load_levels(tmp_path / "x.png")
    assert np.array_equal(out.after, render(levels, pp)) and np.array_equal(out.before, render(levels, pp, clahe=False))
    assert out.after.shape == (32, 32) and not np.array_equal(out.after, out.before)
    with pytest.raises(RejectedInput) as err:
        enhance(b"this is not an image", pp)
    assert err.value.reason == "unreadable image"
    with pytest.raises(RejectedInput):
        enhance(b"", pp)
    with pytest.raises(ValueError, match="bit_depth"):
        settings(bit_depth=12)


def test_enhance_dicom_window_and_no_phi():
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    data = dicom_bytes(pixels, window=(2048, 4096))
    levels, meta = decode(data)
    assert "PatientName" not in meta and PHI_NAME not in json.dumps(meta) and "MRN-12345" not in json.dumps(meta)
    narrow, meta2 = decode(data, window=(1000, 200))
    assert meta2["voi"].startswith("user window 1000/200") and PHI_NAME not in json.dumps(meta2)
    # a narrow window saturates: below 900 -> 0, above 1100 -> max
    assert narrow[pixels < 850].max() == 0 and narrow[pixels > 1150].min() == 65535
    assert len(np.unique(levels)) > len(np.unique(narrow))
    with pytest.raises(RejectedInput, match="DICOM"):
        decode(png_bytes(radiograph(16)), window=(100, 50))
    for broken in (data[:400], data[:-500]):  # header only; pixel data cut short
        with pytest.raises(RejectedInput) as err:
            decode(broken)
        assert err.value.reason in dicom.REASONS


def test_config_preprocess_merges_like_snakemake(tmp_path, repo):
    presets = config_preprocess([repo / "config.yaml", repo / "config" / "ci.yaml"])
    assert presets["phantom_cxr"]["image_size"] == 64  # ci.yaml overrides the default config
    assert presets["v7labs_lung_masks"]["clahe"]["enabled"] is False


def test_results_reader(results):
    df = outputs.manifest(results, "phantom_cxr")
    assert outputs.datasets(results) == ["phantom_cxr"] and outputs.has_images(results, "phantom_cxr")
    assert outputs.label_columns(df) == ["Cardiomegaly", "Pleural Effusion"]
    assert set(outputs.filter_manifest(df, splits=["train"])["split"]) == {"train"}
    eff = outputs.filter_manifest(df, label="Pleural Effusion", state="positive")
    assert list(eff["id"]) == ["p01", "p03", "p05"]
    assert list(outputs.filter_manifest(df, views=["AP"])["id"]) == ["p05"]
    assert list(outputs.filter_manifest(df, text="costophrenic", splits=["val"])["id"]) == ["p01"]
    assert set(outputs.rejects(results, "phantom_cxr")["reason"]) == {"truncated", "lateral view"}
    curves = outputs.training_curves(results / "models" / MODEL)
    assert list(curves) == ["vae", "diffusion"] and list(curves["vae"].index) == [1, 2, 3, 4, 5, 6]
    assert curves["vae"].loc[6, "validation loss"] == 0.42 and np.isnan(curves["vae"].loc[2, "validation loss"])
    (view,) = [v for v in outputs.table_views("choksi2025", outputs.paper_cells(results)["choksi2025"])
               if v.id == "quality"]
    assert view.frame.loc["Ours (phantom, CI)", "SSIM"].startswith("0.5123 [1] / 0.82")
    html = outputs.table_html(view)
    assert 'title="[1] dataset: phantom_cxr; split: test; n: 6; method: skimage SSIM' in html
    assert [c for _, c in outputs.sample_grid(outputs.sample_sets(results)[0][2], 2)] == [
        "Small left pleural effusion. (seed 0)", "Small left pleural effusion. (seed 1)"]


def test_cli_app_listens_on_localhost(monkeypatch, tmp_path):
    cmd = streamlit_command(8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8600"
    seen = {}
    monkeypatch.setattr("medsynth.app.launch", lambda results, **kw: seen.update(results=results, **kw) or 0)
    assert cli.main(["app", "--results", str(tmp_path), "--port", "8601", "--configfile", "missing.yaml"]) == 0
    assert seen == {"results": str(tmp_path), "port": 8601, "address": "127.0.0.1", "config_files": []}


def test_terminating_medsynth_app_stops_the_server(tmp_path):
    """`medsynth app` is the Streamlit server itself: SIGTERM to the command frees its port (a child server would
    outlive it and keep listening)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "medsynth.cli", "app", "--results", str(make_results(
        tmp_path / "results")), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.read().strip() == b"ok"
        except OSError:
            return False

    try:
        deadline = time.time() + 90
        while not answers():
            assert proc.poll() is None and time.time() < deadline, "the app did not start"
            time.sleep(0.5)
        proc.terminate()
        proc.wait(timeout=30)
        deadline = time.time() + 15
        while answers() and time.time() < deadline:
            time.sleep(0.5)
        assert not answers(), "the server still listens after `medsynth app` was terminated"
    finally:
        proc.kill()


# --- pages (AppTest) ---
def test_generate_page_without_models_says_how_to_get_one(empty_results, monkeypatch):
    at = page("generate", empty_results, monkeypatch).run()
    assert not at.exception
    assert any("No trained model yet" in t and "make demo" in t for t in texts(at, "info"))
    assert not at.button


def test_generate_page_generates(results, monkeypatch):
    at = page("generate", results, monkeypatch).run()
    assert not at.exception
    assert at.selectbox(key="gen_model").options == [MODEL]  # 'halfway' cannot sample: mentioned, not offered
    assert any("halfway" in c for c in texts(at, "caption"))
    at.button(key="gen_go").click().run()  # no prompt yet
    assert any("Type a report" in w for w in texts(at, "warning")) and not at.image
    at.selectbox(key="gen_example").select("Small left pleural effusion.").run()  # the model's sampled prompts
    assert at.text_area(key="gen_prompt").value == "Small left pleural effusion."
    at.number_input(key="gen_steps").set_value(3)
    at.number_input(key="gen_seed").set_value(5)
    at.button(key="gen_go").click().run(timeout=TIMEOUT)
    assert not at.exception and len(at.image) == 1
    assert at.metric[0].label == "Time" and at.metric[0].value.endswith(" s")
    shown = json.loads(at.code[0].value)
    assert shown["seed"] == 5 and shown["steps"] == 3 and shown["prompt"] == "Small left pleural effusion."
    assert at.get("download_button")  # PNG with the settings (content checked in the unit test above)
    at.run()  # the result stays on the page across reruns (e.g. after a download)
    assert len(at.image) == 1


def test_enhance_page(results, monkeypatch):
    at = page("enhance", results, monkeypatch).run()
    assert not at.exception and any("Upload" in t for t in texts(at, "info"))
    at.file_uploader(key="enh_upload").upload("chest.png", png_bytes(radiograph(48)), "image/png").run()
    assert not at.exception and len(at.image) == 2 and at.get("download_button")
    assert json.loads(at.code[0].value)["preprocess"]["clahe"]["clip_limit"] == 2.0
    pixels = np.full((40, 40), 7, np.uint16) + np.eye(40, dtype=np.uint16) * 900
    at.file_uploader(key="enh_upload").upload("chest.dcm", dicom_bytes(pixels, window=(500, 1000))).run()
    assert not at.exception and len(at.image) == 2
    window = {w.label: w for w in at.number_input if w.label.startswith("Window")}
    assert (window["Window centre"].value, window["Window width"].value) == (500.0, 1000.0)  # the file's window
    at.checkbox(key="enh_window_on").check().run()
    window = {w.label: w for w in at.number_input if w.label.startswith("Window")}
    window["Window width"].set_value(20.0).run()
    assert "user window 500/20" in json.loads(at.code[0].value)["voi"]
    shown = json.dumps([e.value for e in at.json] + [e.value for e in at.code])
    assert "Modality" in shown and PHI_NAME not in shown and "MRN" not in shown  # allow-listed header fields only
    at.file_uploader(key="enh_upload").upload("chest.png", png_bytes(radiograph(48)), "image/png").run()
    assert not at.exception and any("window needs DICOM" in e for e in texts(at, "error"))
    at.checkbox(key="enh_window_on").uncheck()
    at.file_uploader(key="enh_upload").upload("notes.txt", b"PatientName=Doe", "text/plain").run()
    assert not at.exception and not at.image
    assert any(e.startswith("Cannot use notes.txt: unreadable image") for e in texts(at, "error"))


def test_explore_page(results, empty_results, monkeypatch):
    at = page("explore", empty_results, monkeypatch).run()
    assert not at.exception and any("No processed dataset" in t for t in texts(at, "info"))
    at = page("explore", results, monkeypatch).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 6 and len(at.image[0].value) == 6  # table + thumbnails
    at.selectbox(key="exp_label_phantom_cxr").select("Pleural Effusion").run()
    assert list(at.dataframe[0].value["id"]) == ["p01", "p03", "p05"]
    assert "Pleural Effusion" in at.dataframe[0].value["labels"].iloc[0]
    at.multiselect(key="exp_split_phantom_cxr").select("val").run()
    assert list(at.dataframe[0].value["id"]) == ["p01"]
    assert "Blunted left costophrenic angle." in texts(at, "markdown")  # the picked row's report
    assert "**Positive labels:** Pleural Effusion" in texts(at, "markdown")
    assert sorted(at.dataframe[1].value["reason"]) == ["lateral view", "truncated"]  # rejects by reason
    at.text_input(key="exp_text_phantom_cxr").input("no such words").run()
    assert any("No row matches" in w for w in texts(at, "warning"))
    monkeypatch.setattr("medsynth.app.views.explore.TABLE_ROWS", 2)  # a large manifest: the table is capped
    at = page("explore", results, monkeypatch).run()
    assert len(at.dataframe[0].value) == 2 and "First 2 of 6 matching rows" in " ".join(texts(at, "caption"))
    assert len(at.image[0].value) == 6  # thumbnails page through every matching row


def test_compare_page(results, empty_results, monkeypatch):
    at = page("compare", empty_results, monkeypatch).run()
    assert not at.exception and len([t for t in texts(at, "info") if "yet" in t]) == 4
    at = page("compare", results, monkeypatch).run()
    assert not at.exception
    html = "".join(m for m in texts(at, "markdown") if "medsynth-table" in m)
    assert "0.5123 [1] / 0.82" in html and 'title="[1] dataset: phantom_cxr' in html
    assert at.json[0].value and json.loads(at.json[0].value)["method"] == "skimage SSIM"  # provenance on click
    assert len(at.image[0].value) == 3 and "(seed 0)" in at.image[0].captions[0]  # sample grid
    assert len(at.get("vega_lite_chart")) == 2  # the vae and diffusion loss curves of the one logged model
    assert "**vae** stage: 6 steps, final train loss 0.4" in texts(at, "markdown")
    assert at.image[1].value and at.selectbox(key="cmp_figs").value == "choksi2025"  # the workflow's figures


def test_counterfactual_page(results, empty_results, monkeypatch):
    at = page("counterfactual", empty_results, monkeypatch).run()
    assert not at.exception and any("make demo" in t for t in texts(at, "info"))
    at = page("counterfactual", results, monkeypatch).run()
    assert not at.exception
    at.radio(key="cf_source").set_value("From a dataset").run()
    at.selectbox(key="cf_row_phantom_cxr").select("p02").run()
    at.text_area(key="cf_prompt").input("Large left pleural effusion.")
    at.number_input(key="cf_steps").set_value(4)
    at.button(key="cf_go").click().run(timeout=TIMEOUT)
    assert not at.exception and len(at.image) == 3
    settings_ = json.loads(at.code[0].value)
    assert settings_["strength"] == 0.6 and settings_["steps_run"] == 2
    assert "VA map" in at.image[2].captions[0]
    at.radio(key="cf_source").set_value("Upload").run()
    at.file_uploader(key="cf_upload").upload("bad.dcm", b"\x00" * 200).run()
    assert not at.exception and any(e.startswith("Cannot use this image") for e in texts(at, "error"))


def test_whole_app_navigation(results, monkeypatch, repo):
    monkeypatch.setenv(RESULTS_ENV, str(results))
    at = AppTest.from_file(str(repo / "src" / "medsynth" / "app" / "streamlit_app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Generate" and at.sidebar.text_input(key="results_dir").value == str(results)
