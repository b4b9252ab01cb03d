"""The generic generative-metrics step (reference-stat cache + FID/KID/IS records) and the feature backbones:
torchxrayvision features2 from a local file, the project's classifier, the stand-in rules."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.metrics import backbones as B
from medsynth.metrics import generative as G
from medsynth.metrics.fid import InceptionEvaluator
from medsynth.metrics.stats import CachedStats

torch.set_num_threads(1)


def _pngs(folder, seed, n, size, bright=0.0, bits=8):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        img = np.clip(rng.random((size, size)) * 0.6 + bright, 0, 1)
        arr = (img * 65535).astype(np.uint16) if bits == 16 else (img * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
        names.append(f"{i:03d}.png")
    return names


class _PoolWithLogits(torch.nn.Module):
    """A stand-in backbone with the Inception interface: (channel means, 5-way logits)."""

    def forward(self, x):
        feats = x.mean(dim=(2, 3)) + x.std(dim=(2, 3))
        return feats, torch.cat([feats, feats ** 2], dim=1)[:, :5] * 10


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gen_cache")


def test_reference_cache_and_records_carry_provenance(tmp_path, cache):
    names = _pngs(tmp_path / "real", 0, 8, 40)
    manifest = pd.DataFrame({"image": [f"real/{n}" for n in names], "split": ["train"] * 4 + ["test"] * 4})
    gen_names = _pngs(tmp_path / "gen", 1, 4, 24, bright=0.35)
    samples = pd.DataFrame({"file": gen_names, "split": ["test"] * 4})

    ev = InceptionEvaluator.create("inception-random", dims=64, cache_dir=cache, is_splits=2, pre_resize="bicubic32")
    assert ev.resize_mode == "bicubic32+bilinear-299-in-model"
    paths = G.reference_paths(manifest, tmp_path, "test")
    assert [p.name for p in paths] == names[4:]
    ref = G.compute_reference(ev, paths, tmp_path / "ref.npz", "toy", "test", batch_size=3)
    assert ref.n == 4 and ref.meta["resize_mode"] == ev.resize_mode and ref.meta["dataset"] == "toy"
    with np.load(tmp_path / "ref.npz") as raw:  # what pytorch-fid reads from a precomputed .npz
        assert raw["mu"].shape == (64,) and raw["sigma"].shape == (64, 64)

    recs = G.evaluate_generated(ev, tmp_path / "ref.npz", G.generated_paths(samples, tmp_path / "gen", "test"),
                                kid_subsets=3, extra={"model": "m"})
    assert set(recs) == {"fid", "kid"}  # no IS from the 64-d block: it has no logits
    fid = recs["fid"]
    assert fid["value"] > 0 and fid["n"] == 4 and fid["backbone"] == "inception-random"
    assert fid["weights_sha256"] == ev.info.weights_sha256 and fid["resize_mode"] == ev.resize_mode
    assert fid["extra"]["stand_in"] is True and fid["extra"]["reference"] == {"dataset": "toy", "split": "test",
                                                                              "n": 4}
    # with logits (2048-d Inception; here a cheap stand-in module): IS, or a stated reason when there are fewer
    # images than IS splits
    ev_full = InceptionEvaluator(_PoolWithLogits(), B.BackboneInfo("toy-random", "w", "0" * 64), dims=3, is_splits=3)
    G.compute_reference(ev_full, paths, tmp_path / "ref2048.npz", "toy", "test")
    gen_paths = G.generated_paths(samples, tmp_path / "gen", "test")
    full = G.evaluate_generated(ev_full, tmp_path / "ref2048.npz", gen_paths, kid_subsets=2)
    assert set(full) == {"fid", "kid", "is"} and full["is"]["extra"]["splits"] == 3
    few = G.evaluate_generated(ev_full, tmp_path / "ref2048.npz", gen_paths[:2], kid_subsets=2)
    assert set(few) == {"fid", "kid"} and "2 images < 3 splits" in few["fid"]["extra"]["inception_score"]
    # the same real images as "generated": FID ~ 0 (the cached side and the fresh side agree)
    same = G.evaluate_generated(ev, tmp_path / "ref.npz", paths, kid_subsets=2)
    assert same["fid"]["value"] == pytest.approx(0.0, abs=1e-6)

    # statistics from another weights file or resize mode are refused, never silently reused
    other_weights = B.BackboneInfo("inception-random", "seed1.safetensors", "f" * 64, ev.info.resize_mode)
    other = InceptionEvaluator(ev.model, other_weights, dims=64, pre_resize="bicubic32")
    with pytest.raises(MedsynthError, match="different settings.*weights_sha256"):
        other.check_reference(CachedStats(tmp_path / "ref.npz"))
    ev_native = InceptionEvaluator(ev.model, ev.info, dims=64)
    with pytest.raises(MedsynthError, match="resize_mode"):
        ev_native.check_reference(ref)


def test_images_read_like_pytorch_fid_with_resize_and_16_bit(tmp_path):
    _pngs(tmp_path / "a", 2, 1, 20, bits=16)
    arr16 = np.asarray(Image.open(tmp_path / "a" / "000.png"), dtype=np.float64)
    img = G.read_image(tmp_path / "a" / "000.png")
    assert img.shape == (20, 20, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], np.round(arr16 / 257).astype(np.uint8))  # scaled, not clipped
    assert G.read_image(tmp_path / "a" / "000.png", "bilinear12").shape == (12, 12, 3)
    assert G.parse_resize("native") == (None, None) and G.parse_resize("lanczos256") == ("lanczos", 256)
    for bad in ("cubic64", "bicubic", "bicubic4"):
        with pytest.raises(MedsynthError, match="resize mode"):
            G.parse_resize(bad)
    batches = list(G.image_batches([tmp_path / "a" / "000.png"] * 3, "box16", batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 16, 16), (1, 3, 16, 16)]
    table = pd.DataFrame({"file": ["x"], "split": ["val"]})
    assert len(G.select_split(table, "val+test", "t")) == 1 and len(G.select_split(table, "all", "t")) == 1
    with pytest.raises(MedsynthError, match="no rows"):
        G.select_split(table, "train", "t")
    with pytest.raises(MedsynthError, match="no 'split' column"):
        G.select_split(table[["file"]], "val", "the samples table")


def test_xrv_features2_from_a_local_file(tmp_path):
    import torchxrayvision as xrv
    from safetensors.torch import save_file

    from medsynth.classifier.xrv import xrv_input

    torch.manual_seed(0)
    net = xrv.models.DenseNet(weights=None, num_classes=18).eval()
    path = tmp_path / "xrv.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    ev = InceptionEvaluator.create("xrv-densenet121", weights=path, dims=2048)  # dims is the backbone's own
    assert ev.dims == 1024 and ev.info.backbone == "xrv-densenet121" and not ev.provenance["stand_in"]
    assert "224" in ev.info.resize_mode and len(ev.info.weights_sha256) == 64
    imgs = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    stats = ev.stats([imgs])
    with torch.no_grad():  # features2 of torchxrayvision's own input convention ([-1024, 1024], 224 px)
        expected = net.features2(xrv_input(torch.from_numpy(imgs)[:, None])).double().numpy()
    np.testing.assert_allclose(stats.mu, expected.mean(0), rtol=1e-4, atol=1e-6)
    # 3 images in 1024 dims: a rank-2 covariance with large entries; ~0 relative to its trace
    assert abs(ev.fid(stats, stats)) <= 1e-7 * np.trace(stats.sigma)

    # the same file as a classifier-metrics scorer, in CheXpert label names
    from medsynth.metrics.scoring import load_scorer, score_samples

    scorer = load_scorer("xrv-densenet121", path)
    assert "Pleural Effusion" in scorer.labels and not scorer.provenance["stand_in"]
    names = _pngs(tmp_path / "gen", 4, 2, 40)
    table = pd.DataFrame({"file": names, "Pleural Effusion": [1.0, 0.0], "Edema": [0.0, 1.0]})
    scored = score_samples(scorer, table, tmp_path / "gen")
    assert scored["labels"] == ["Edema", "Pleural Effusion"] and scored["generated"]["Edema"]["auc"] in (0.0, 0.5, 1.0)
    assert "real" not in scored  # no source images to compare with

    cfg = {"xrv_weights": str(path), "scale": "paper"}
    assert B.rule_inputs(cfg, "results", "xrv-densenet121", "d") == {"weights": str(path)}
    with pytest.raises(MedsynthError, match="xrv_weights is unset"):
        B.rule_inputs({}, "results", "xrv-densenet121", "d")
    with pytest.raises(MedsynthError, match="xrv_weights"):
        InceptionEvaluator.create("xrv-densenet121")


def test_classifier_backbone_is_a_labelled_stand_in(tmp_path):
    from medsynth.classifier.model import build_classifier
    from medsynth.classifier.train import save_classifier

    torch.manual_seed(0)
    model = build_classifier("small_cnn", 2).eval()
    meta = {"arch": "small_cnn", "labels": ["No Finding", "Pleural Effusion"], "image_size": 32,
            "uncertain": "positive"}
    save_classifier(model, meta, tmp_path / "model.safetensors", tmp_path / "model.json")
    ev = InceptionEvaluator.create("classifier", weights=tmp_path / "model.safetensors", card=tmp_path / "model.json")
    assert ev.dims == 128 and ev.info.backbone == "classifier:small_cnn" and ev.provenance["stand_in"]
    x = np.random.default_rng(1).random((4, 48, 48)).astype(np.float32)
    stats = ev.stats([x])
    small = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=(32, 32), mode="bilinear",
                                            align_corners=False, antialias=True)
    with torch.no_grad():
        np.testing.assert_allclose(stats.mu, model.features(small).double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert B.rule_inputs({}, "res", "classifier", "phantom_cxr") == {
        "weights": "res/models/classifier/phantom_cxr/model.safetensors",
        "card": "res/models/classifier/phantom_cxr/model.json"}


def test_stand_ins_are_explicit_and_refused_at_paper_scale(tmp_path, monkeypatch):
    from medsynth.metrics.stand_ins import is_stand_in

    assert is_stand_in("inception-random") and is_stand_in("classifier:densenet121")
    assert not is_stand_in("inception-fid") and not is_stand_in("xrv-densenet121") and not is_stand_in(None)
    B.check_backbone_allowed("inception-random", "demo")
    with pytest.raises(MedsynthError, match="scale: paper with backbone .inception-random.: set the backbone to inception-fid"):
        B.rule_inputs({"scale": "paper"}, "r", "inception-random", "d")
    with pytest.raises(MedsynthError, match="unknown metrics backbone"):
        B.check_backbone_allowed("vgg16", "demo")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MedsynthError, match="metrics.inception_weights"):
        B.rule_inputs({"scale": "demo"}, "r", "inception-fid", "d")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    cfg = {"scale": "paper", "metrics": {"inception_weights": str(weights), "dims": 192}}
    assert B.rule_inputs(cfg, "r", "inception-fid", "d") == {"weights": str(weights)}
    assert B.metrics_settings(cfg)["dims"] == 192 and B.metrics_settings({})["kid_subset_size"] == 1000


def test_classifier_metrics_of_generated_images(tmp_path):
    from medsynth.classifier.data import image_batch
    from medsynth.classifier.model import build_classifier
    from medsynth.classifier.train import predict, save_classifier
    from medsynth.metrics.classification import per_label_metrics
    from medsynth.metrics.scoring import load_scorer, score_samples

    torch.manual_seed(0)
    model = build_classifier("small_cnn", 2).eval()
    meta = {"arch": "small_cnn", "labels": ["No Finding", "Pleural Effusion"], "image_size": 32,
            "uncertain": "positive"}
    save_classifier(model, meta, tmp_path / "m.safetensors", tmp_path / "m.json")
    names = _pngs(tmp_path / "gen", 3, 6, 32)
    samples = pd.DataFrame({"file": names, "source_image": [f"gen/{n}" for n in names], "split": ["test"] * 6,
                            "Pleural Effusion": [1.0, 0.0, -1.0, np.nan, 1.0, 0.0],
                            "No Finding": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]})
    scorer = load_scorer("classifier", tmp_path / "m.safetensors", tmp_path / "m.json")
    assert scorer.provenance["stand_in"] and scorer.backbone == "classifier:small_cnn"
    out = score_samples(scorer, samples, tmp_path / "gen", results=tmp_path)
    probs = predict(model, image_batch([tmp_path / "gen" / n for n in names], 32))
    y = np.array([[0, 1], [1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=float)  # -1 -> positive, NaN -> negative
    intervals = {k: v.pop("auc_ci") for k, v in out["generated"].items() if "auc_ci" in v}
    assert out["generated"] == per_label_metrics(y, probs, ["No Finding", "Pleural Effusion"])
    assert set(intervals) == {"No Finding", "Pleural Effusion"}      # each defined AUC carries its interval
    for lab, (lo, hi) in intervals.items():
        assert 0.0 <= lo <= out["generated"][lab]["auc"] <= hi <= 1.0
    # "generated" images that ARE the real ones: identical scores, feature cosine 1
    assert {k: {m: v for m, v in d.items() if m != "auc_ci"} for k, d in out["real"].items()} == out["generated"]
    assert out["feature_cosine"]["mean"] == pytest.approx(1.0) and out["feature_cosine"]["n"] == 6
    with pytest.raises(MedsynthError, match="none of the scorer's labels"):
        score_samples(scorer, samples[["file"]], tmp_path / "gen")
    with pytest.raises(MedsynthError, match="not trained on"):
        load_scorer("classifier", tmp_path / "m.safetensors", tmp_path / "m.json", labels=["Edema"])


def test_generic_rules_plan_from_a_target_path(tmp_path):
    """Dry run: a paper asks for one metrics file; Snakemake plans the reference statistics and the metrics jobs."""
    import subprocess
    import sys

    from tests.conftest import REPO

    data = tmp_path / "results" / "data" / "phantom_cxr"
    data.mkdir(parents=True)
    pd.DataFrame({"id": ["0"], "image": ["x.png"], "split": ["test"]}).to_parquet(data / "manifest.parquet")
    samples = tmp_path / "results" / "samples" / "choksi2025" / "reports"
    samples.mkdir(parents=True)
    pd.DataFrame({"file": ["0.png"], "split": ["test"]}).to_csv(samples / "samples.csv", index=False)
    target = "results/eval/generative/choksi2025/reports/test/val+test/inception-random__bicubic64.json"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), "--cores", "1", "-n", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = (proc.stdout + proc.stderr).splitlines()
    start = out.index("Job stats:") + 3  # header, rule line
    jobs = {}
    for line in out[start:]:
        if line.startswith("total"):
            break
        name, count = line.split()
        jobs[name] = int(count)
    assert jobs == {"reference_stats": 1, "generative_metrics": 1}  # existing samples/manifest are reused


def test_rendering_a_report_page_does_not_import_torch():
    """Every report job is a fresh process on the cluster and in the demo: importing the CUDA build of torch costs
    it ~3.5 CPU-seconds for nothing (the page only reads JSON cells)."""
    import subprocess
    import sys

    code = ("import sys, medsynth.report.render, medsynth.report.cells, medsynth.report.index, "
            "medsynth.report.progress; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
