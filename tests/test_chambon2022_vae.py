"""chambon2022 Study 1 (VAE reconstruction): known values through the whole chain with an identity VAE (RMSE 0,
PSNR inf, SSIM 1, feature cosine 1, FID 0, equal AUCs), a real tiny AutoencoderKL (seeded latent samples that do
not depend on the batch size, gray into a 3-channel VAE), loading a trained VAE folder and a checkpoint's vae
subfolder with their weights hash, the config checks, image selection and the cells in the paper's layout."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.metrics.inception import sha256_file
from medsynth.metrics.scoring import Scorer
from medsynth.models.autoencoder import build_autoencoder
from medsynth.papers import chambon2022_vae as V
from medsynth.report.render import side_by_side, to_markdown

LABELS = ["Pleural Effusion", "Cardiomegaly"]


class IdentityVAE(torch.nn.Module):
    """encode: latent = image, posterior std ~3e-7 (logvar clamped at -30); decode: latent -> image."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.config = types.SimpleNamespace(in_channels=channels)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        return types.SimpleNamespace(latent_dist=DiagonalGaussianDistribution(torch.cat([x, torch.full_like(x, -30)], 1)))

    def decode(self, z):
        return types.SimpleNamespace(sample=z)


def _cohort(tmp_path, n=8, size=40):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        img = (rng.random((size, size)) * 60 + np.linspace(0, 180, size)[None]).astype(np.uint8)
        rel = f"img/{i}.png"
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / rel)
        rows.append({"id": f"p{i}", "split": "test" if i % 4 else "val", "view": "PA", "image": rel,
                     "Pleural Effusion": float(i % 2), "Cardiomegaly": [1.0, 0.0, -1.0, np.nan][i % 4]})
    return pd.DataFrame(rows)


def _scorer():
    """A fixed scorer: features = 4 quadrant means + 1; scores = sigmoid of two feature contrasts."""
    def feats(x):
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        q = [x[..., :h, :w], x[..., :h, w:], x[..., h:, :w], x[..., h:, w:]]
        return torch.stack([t.mean(dim=(1, 2, 3)) for t in q], 1).numpy() + 1.0

    def predict(x):
        f = feats(x)
        return 1 / (1 + np.exp(-np.stack([10 * (f[:, 0] - f[:, 3]), 10 * (f[:, 1] - f[:, 2])], 1)))

    return Scorer("classifier:test", "ab" * 32, list(LABELS), 32, "positive", predict, feats)


def test_identity_vae_gives_known_values(tmp_path):
    from medsynth.metrics.fid import InceptionEvaluator

    manifest = _cohort(tmp_path)
    rows = V.select_images(manifest, ["val", "test"], 100, seed=0)
    out = tmp_path / "recon"
    table = V.reconstruct_dataset(rows, tmp_path, IdentityVAE(), out, size=40, seed=0, batch_size=3)
    assert list(table["original"]) == [f"originals/{i:05d}.png" for i in range(8)]
    assert table["Cardiomegaly"].isna().sum() == 2 and list(table["id"]) == list(manifest["id"])
    originals, recons = V.read_pairs(table, out)
    np.testing.assert_array_equal(originals, recons)
    per = V.pair_metrics(originals, recons)
    assert per["rmse"].eq(0).all() and per["ssim"].eq(1).all() and np.isinf(per["psnr"]).all()
    s = V.summary(per["psnr"])
    assert s["n"] == 0 and s["n_infinite"] == 8 and s["mean"] is None
    clf = V.classifier_metrics(_scorer(), table, out)
    np.testing.assert_allclose(clf["cosine_per_image"], 1.0)
    assert clf["feature_cosine"]["mean"] == pytest.approx(1.0) and clf["feature_cosine"]["std"] == pytest.approx(0)
    assert clf["labels"] == LABELS and clf["original"] == clf["reconstruction"]
    # CheXpert policy: uncertain -> positive, missing -> negative
    assert clf["original"]["Cardiomegaly"]["positives"] == 4
    ev = InceptionEvaluator.create("inception-random", dims=64, seed=0, cache_dir=tmp_path / "cache")
    f = V.fid(ev, originals, recons, batch_size=3)
    assert f["value"] == pytest.approx(0, abs=1e-6) and f["n"] == 8 and f["stand_in"] is True
    assert V.fid(ev, originals[:1], recons[:1])["value"] is None


def test_pair_metrics_known_error():
    a = np.full((2, 16, 16), 100, np.uint8)
    b = a.copy()
    b[1] += 10  # image 1: every pixel off by 10 -> RMSE 10, PSNR 20 log10(25.5)
    per = V.pair_metrics(a, b)
    np.testing.assert_allclose(per["rmse"], [0, 10])
    assert per["psnr"][1] == pytest.approx(20 * np.log10(25.5))
    with pytest.raises(MedsynthError, match="paired uint8"):
        V.pair_metrics(a, b[:1])


def test_real_vae_seeded_sample_independent_of_batch_size():
    torch.manual_seed(0)
    vae = build_autoencoder(1, 4, (8, 16), 1, 4, 32).eval()
    x = torch.rand(5, 1, 32, 32)
    one = V.reconstruct(vae, x, seed=3, batch_size=1)
    five = V.reconstruct(vae, x, seed=3, batch_size=5)
    assert one.shape == (5, 1, 32, 32) and 0 <= float(one.min()) and float(one.max()) <= 1
    torch.testing.assert_close(one, five, atol=1e-5, rtol=0)
    assert not torch.allclose(one, V.reconstruct(vae, x, seed=4, batch_size=5), atol=1e-6)
    mean = V.reconstruct(vae, x, seed=3, sample=False)
    torch.testing.assert_close(mean, V.reconstruct(vae, x, seed=9, sample=False))
    # a 3-channel VAE (Stable Diffusion) takes the gray image replicated and returns the channel mean
    rgb = build_autoencoder(3, 4, (8, 16), 1, 4, 32).eval()
    assert V.reconstruct(rgb, x[:2], seed=0).shape == (2, 1, 32, 32)
    with pytest.raises(MedsynthError, match=r"\[0, 1\]"):
        V.reconstruct(vae, x * 2)


def test_load_trained_vae_and_checkpoint_subfolder(tmp_path):
    vae = build_autoencoder(1, 4, (8, 16), 1, 4, 32)
    vae.save_pretrained(tmp_path / "m" / "vae", safe_serialization=True)
    loaded, info = V.load_vae(None, tmp_path / "m" / "vae")
    weights = tmp_path / "m" / "vae" / "diffusion_pytorch_model.safetensors"
    assert info["vae_weights_sha256"] == sha256_file(weights) and info["vae"] == "trained VAE m/vae"
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(V.reconstruct(loaded, x, seed=1), V.reconstruct(vae.eval(), x, seed=1))
    # a pretrained checkpoint: its vae subfolder, from a local diffusers folder
    ckpt, ckpt_info = V.load_vae({"name": str(tmp_path / "m")})
    assert ckpt_info["vae_weights_sha256"] == info["vae_weights_sha256"]
    with pytest.raises(MedsynthError, match="cannot load VAE"):
        V.load_vae({"name": str(tmp_path / "absent")})


def _config(**study):
    base = {"model": "base", "datasets": {"table1": "cxr"}, "fid": {"backbone": "inception-random"},
            "scorer": "classifier"}
    return {"scale": "demo", "datasets": {"cxr": {}, "cxr2": {}},
            "models": {"base": {"image_size": 64}, "adapted": {"pretrained": {"model": "base"}},
                       "sd": {"pretrained": {"name": "CompVis/stable-diffusion-v1-4"}}}}, {**base, **study}


def test_study_config_checks():
    config, study = _config()
    assert V.study_tables(study, config) == {"table1": "cxr"}
    assert V.image_size(study, config["models"]) == 64
    assert V.vae_source(config["models"], "adapted") == ("trained", "base")
    assert V.image_size({**study, "model": "adapted"}, config["models"]) == 64
    assert V.vae_source(config["models"], "sd") == ("pretrained", {"name": "CompVis/stable-diffusion-v1-4"})
    with pytest.raises(MedsynthError, match="image_size"):
        V.image_size({**study, "model": "sd"}, config["models"])
    assert V.image_size({**study, "model": "sd", "image_size": 512}, config["models"]) == 512
    for bad, match in [({"model": "nope"}, "vae_study.model"), ({"datasets": {"table2": "cxr"}}, "table1, table6"),
                       ({"datasets": {"table6": "chexpert"}}, "not a dataset"), ({"datasets": {}}, "at least one"),
                       ({"fid": {}}, "fid.backbone"), ({"scorer": None}, "vae_study.scorer")]:
        with pytest.raises(MedsynthError, match=match):
            V.study_tables({**study, **bad}, config)
    with pytest.raises(MedsynthError, match="config error at .chambon2022.vae_study.fid.backbone.: scale: paper"):
        V.study_tables(study, {**config, "scale": "paper"})


def test_select_images_frontal_split_and_seeded_draw(tmp_path):
    m = _cohort(tmp_path, n=12)
    m.loc[0, "view"] = "LATERAL"
    m.loc[5, "view"] = "LL"
    rows = V.select_images(m, ["test"], 100, seed=0)
    assert set(rows["split"]) == {"test"} and not set(rows["id"]) & {"p0", "p5"}
    a, b = V.select_images(m, ["val", "test"], 4, seed=1), V.select_images(m, ["val", "test"], 4, seed=1)
    assert len(a) == 4 and list(a["id"]) == list(b["id"])
    assert list(a["id"]) == sorted(a["id"], key=lambda s: int(s[1:]))  # manifest order kept
    with pytest.raises(MedsynthError, match="no frontal images"):
        V.select_images(m, ["train"], 4, seed=0)


def _metrics(scale_table="table1"):
    per_label = {"n": 8, "positives": 4, "threshold": 0.5, "accuracy": 0.75, "precision": 0.5, "recall": 1.0,
                 "f1": 0.66, "auc": 0.8}
    one_class = {**per_label, "auc": None, "auc_undefined": "only one class present in y_true"}
    side = {"Pleural Effusion": per_label, "Cardiomegaly": one_class, "macro": {}}
    return {"table": scale_table, "dataset": "cxr", "splits": ["val", "test"], "image_size": 64, "seed": 0,
            "sample_latent": True, "config": "chambon2022.vae_study: test",
            "vae": {"vae": "trained VAE base/vae", "vae_weights": "w.safetensors", "vae_weights_sha256": "cd" * 32},
            "pairs": {"rmse": {"n": 8, "mean": 12.0, "std": 2.0}, "psnr": {"n": 8, "mean": 27.0, "std": 1.0},
                      "ssim": {"n": 8, "mean": 0.9, "std": 0.01}},
            "fid": {"n": 8, "value": 3.5, "backbone": "inception-random", "weights": "r.pth",
                    "weights_sha256": "ef" * 32, "stand_in": True, "resize_mode": "bilinear-299-in-model",
                    "dims": 2048, "batch_size": 32, "seed": 0},
            "classifier": {"labels": ["Pleural Effusion", "Cardiomegaly"], "n": 8, "threshold": 0.5,
                           "uncertain": "positive", "original": side, "reconstruction": side,
                           "backbone": "classifier:small_cnn", "weights_sha256": "ab" * 32, "stand_in": True,
                           "input_size": 64, "feature_cosine": {"n": 8, "mean": 0.99, "std": 0.005,
                                                                "excluded_zero_feature_pairs": 0}}}


def test_cells_land_in_the_papers_layout():
    cells = V.table_cells(_metrics(), "demo")
    study = [c for c in cells if c["table"] == "study1_vae"]
    assert {c["column"] for c in study} == {"RMSE", "PSNR (dB)", "SSIM", "feature cosine similarity",
                                             V.FID_COLUMN}
    assert all(c["row"] == "cxr (measured)" and "reproduces" not in c for c in study)
    rmse = next(c for c in study if c["column"] == "RMSE")
    assert rmse["value"] == 12.0 and rmse["std"] == 2.0 and rmse["provenance"]["vae_weights_sha256"] == "cd" * 32
    table1 = [c for c in cells if c["table"] == "table1"]
    assert len(table1) == 2 * 2 * 3 and {c["row"] for c in table1} == {"Pleural Effusion", "Cardiomegaly"}
    undefined = next(c for c in table1 if c["row"] == "Cardiomegaly" and c["column"] == "AUC reconstruction")
    assert undefined["value"] is None and "only one class" in undefined["provenance"]["method"]
    assert all(c["provenance"]["stand_in"] for c in table1)  # the project's classifier is a labelled stand-in
    tables = {t.id: t for t in side_by_side("chambon2022", cells)}
    pe = tables["table1"].rows["Pleural Effusion"]
    assert pe[0].published == 0.877 and pe[0].measured == 0.8 and pe[0].stand_in
    md = to_markdown("chambon2022", list(tables.values()), "demo", "config.yaml")
    assert "cxr (measured)" in md and "Δ not comparable" in md
    # at paper scale the dataset's row sits beside the paper's row for that table's dataset
    paper = V.table_cells({**_metrics("table6"), "fid": {**_metrics()["fid"], "backbone": "inception-fid",
                                                         "stand_in": False}}, "paper")
    study6 = [c for c in paper if c["table"] == "study1_vae"]
    assert all(c["reproduces"] == "CheXpert" for c in study6)
    t = {t.id: t for t in side_by_side("chambon2022", paper)}["study1_vae"]
    assert t.rows["cxr (measured)"][0].published == 47.8


def test_figures(tmp_path):
    manifest = _cohort(tmp_path, n=4)
    table = V.reconstruct_dataset(manifest, tmp_path, IdentityVAE(), tmp_path / "r", size=32, seed=0)
    per = V.pair_metrics(*V.read_pairs(table, tmp_path / "r")).assign(cosine=1.0)
    V.plot_distributions({"cxr (table1)": per}, tmp_path / "d.png")
    V.plot_examples(table, tmp_path / "r", tmp_path / "e.png", n=3, per_image=per)
    for name in ("d.png", "e.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] > 300
    json.dumps(V.table_cells(_metrics(), "demo"))  # cells are plain JSON


def test_paper_config_names_real_backbones_and_sd_vae(repo, tmp_path, monkeypatch):
    """config/chambon2022_paper.yaml: SD v1.4's VAE at 512 px on MIMIC-CXR (Table 1) and CheXpert (Table 6), the real
    FID Inception and torchxrayvision's DenseNet -- no stand-in named, so nothing can fall back silently."""
    monkeypatch.setenv("MEDSYNTH_PSEUDONYM_KEY", "test-secret")  # real data refuses the public demo key
    import yaml
    from snakemake.utils import update_config

    from medsynth import workflow as wf

    cfg = {}
    for name in ("config.yaml", "config/mimic_cxr.yaml", "config/chexpert.yaml", "config/chambon2022_paper.yaml"):
        update_config(cfg, yaml.safe_load((repo / name).read_text()))
    for ds in ("mimic_cxr", "chexpert"):
        cfg["datasets"][ds]["root"] = str(tmp_path)
    wf.validate_config(cfg, repo / "schemas" / "config.schema.yaml")
    study = cfg["chambon2022"]["vae_study"]
    assert V.study_tables(study, cfg) == {"table1": "mimic_cxr", "table6": "chexpert"}
    assert V.image_size(study, cfg["models"]) == 512 and study["n_images"] == 1000
    assert V.vae_source(cfg["models"], study["model"]) == ("pretrained", {"name": "CompVis/stable-diffusion-v1-4"})
    assert study["fid"]["backbone"] == "inception-fid" and study["scorer"] == "xrv-densenet121"
