"""3D domain feature distances (xing2024): slice-wise (one 1-channel image per slice) and patch-wise (3D patches
through a 3D network) FID/KID between volume sets; the MedicalNet layout loader; the volume_metrics rule's plan."""
import numpy as np
import pandas as pd
import pytest
import torch

from medsynth.errors import MedsynthError
from medsynth.metrics import med3d as M
from medsynth.metrics import volumes as V
from medsynth.metrics.fid import InceptionEvaluator
from medsynth.metrics.inception import BackboneInfo

torch.set_num_threads(1)


def _volumes(folder, seed, n, shape=(24, 24, 16), shift=0.0):
    """Crop files in the preprocessed layout (image: float16 1 x X x Y x Z in [0, 1]): smooth random anatomy."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        noise = rng.random(shape)
        smooth = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, 1, 2)) / 4
        vol = np.clip(0.15 + 0.6 * smooth + shift, 0, 1)
        path = folder / f"{seed}_{i}.npz"
        np.savez(path, image=vol[None].astype(np.float16), mask=np.zeros((4, *shape), np.uint8))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vol_cache")


@pytest.fixture(scope="module")
def settings():
    s = V.volume_settings({"metrics": {"dims": 64, "kid_subsets": 20, "is_splits": 2,
                                       "volume": {"patch_size": [8, 8, 8], "volume_batch_size": 16}}})
    assert s["patch_stride"] == [8, 8, 8]  # default: non-overlapping
    return s


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("vols")
    return {"a": _volumes(root / "a", 1, 4), "b": _volumes(root / "b", 2, 4),
            "shifted": _volumes(root / "s", 2, 4, shift=0.2)}


@pytest.mark.parametrize("mode,backbone", [("patch", "med3d-random"), ("slice", "inception-random")])
def test_identical_zero_symmetric_and_shift_is_larger(mode, backbone, settings, sets, cache):
    settings = {**settings, "slice_step": 4}  # 4 slices per volume: the 299 x 299 Inception is the slow part
    ev = V.volume_evaluator(mode, backbone, settings, seed=0, cache_dir=cache)
    same = V.volume_records(ev, mode, sets["a"], sets["a"], settings)
    ab = V.volume_records(ev, mode, sets["a"], sets["b"], settings)
    ba = V.volume_records(ev, mode, sets["b"], sets["a"], settings)
    shifted = V.volume_records(ev, mode, sets["a"], sets["shifted"], settings)
    assert abs(same["fid"]["value"]) < 1e-6 * max(1.0, ab["fid"]["value"])
    assert ab["fid"]["value"] == pytest.approx(ba["fid"]["value"], rel=1e-6)
    assert shifted["fid"]["value"] > 5 * ab["fid"]["value"] > 0
    assert shifted["kid"]["value"] > ab["kid"]["value"]
    rec = ab["fid"]
    assert rec["backbone"] == backbone and len(rec["weights_sha256"]) == 64 and rec["seed"] == 0
    assert rec["extra"]["stand_in"] is True and rec["extra"]["mode"] == mode
    assert f"{mode}-wise" in rec["definition"]
    item, per_volume = ("n_slices", 4) if mode == "slice" else ("n_patches", 3 * 3 * 2)
    assert rec["extra"]["a"] == {"set": "a", "n_volumes": 4, item: 4 * per_volume}
    assert rec["n"] == rec["extra"]["b"][item]
    if mode == "slice":
        assert "replicated to 3 identical channels" in rec["extra"]["channels"]
        assert rec["extra"]["slice_axis"] == 2 and rec["extra"]["slice_step"] == 4
    else:
        assert rec["extra"]["patch_size"] == [8, 8, 8] and rec["extra"]["dims"] == 512 and "is" not in ab


class _Spy(torch.nn.Module):
    """Records what a 2D backbone is fed."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.mean(dim=(2, 3)), None


def test_each_slice_is_one_gray_image_never_three_adjacent_slices(tmp_path, settings):
    (path,) = _volumes(tmp_path, 3, 1, shape=(10, 12, 6))
    vol = V.read_volume(path)
    spy = _Spy()
    ev = InceptionEvaluator(model=spy, info=BackboneInfo("inception-random", "w", "0" * 64), dims=3)
    stats, count = V.set_stats(ev, "slice", [path], {**settings, "volume_batch_size": 4})
    seen = torch.cat(spy.seen)
    assert stats.n == count.items == 6 and count.volumes == 1
    assert seen.shape == (6, 3, 10, 12)  # axial slices (RAS+ axis 2), one per image
    for k in range(6):
        for c in range(3):  # the three channels are the same slice, not slices k-1, k, k+1
            np.testing.assert_array_equal(seen[k, c].numpy(), vol[:, :, k])
    coronal = V.volume_slices(vol, axis=1, step=5)
    assert coronal.shape == (3, 10, 6)
    np.testing.assert_array_equal(coronal[1], vol[:, 5, :])


def test_patch_grid_and_streaming(tmp_path):
    vol = np.random.default_rng(0).random((20, 16, 9)).astype(np.float32)
    assert V.patch_origins(vol.shape, (8, 8, 8), (8, 8, 8)) == [(0, 0, 0), (0, 8, 0), (8, 0, 0), (8, 8, 0)]
    patches = V.volume_patches(vol, (8, 8, 8), (6, 8, 1))
    assert patches.shape == (3 * 2 * 2, 1, 8, 8, 8)
    np.testing.assert_array_equal(patches[-1, 0], vol[12:20, 8:16, 1:9])
    with pytest.raises(MedsynthError, match="larger than the volume"):
        V.patch_origins(vol.shape, (8, 8, 16), (8, 8, 8))
    # volumes are read one at a time: the first batches exist before a later (broken) file is touched
    paths = _volumes(tmp_path, 4, 2, shape=(16, 16, 8)) + [tmp_path / "missing.npz"]
    counter = V.SetCounter()
    batches = V.patch_batches(paths, (8, 8, 8), (8, 8, 8), batch_size=4, backbone="med3d-random", counter=counter)
    first = next(batches)
    assert first.shape == (4, 1, 8, 8, 8) and counter.volumes == 1
    with pytest.raises(FileNotFoundError):
        list(batches)


def test_read_volume_refuses_what_is_not_a_windowed_volume(tmp_path):
    np.save(tmp_path / "hu.npy", np.full((4, 4, 4), -1000.0))
    with pytest.raises(MedsynthError, match=r"in \[0, 1\]"):
        V.read_volume(tmp_path / "hu.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(MedsynthError, match="X x Y x Z"):
        V.read_volume(tmp_path / "flat.npy")
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    with pytest.raises(MedsynthError, match="preprocessing"):
        V.read_volume(tmp_path / "ct.nii.gz")


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_medicalnet_checkpoint_layout_loads(tmp_path, shortcut, cache):
    """A MedicalNet-style .pth ({'state_dict': {'module.*'}} with its conv_seg head) loads into the trunk."""
    state = M.random_state_dict(7, shortcut)
    assert any(".downsample." in k for k in state) == (shortcut == "B")
    ckpt = {"state_dict": {**{f"module.{k}": v for k, v in state.items()},
                           "module.conv_seg.0.weight": torch.zeros(2, 512, 1, 1, 1)}}
    torch.save(ckpt, tmp_path / "resnet_10.pth")
    model, info = M.load_med3d("med3d-resnet10", tmp_path / "resnet_10.pth")
    assert info.backbone == "med3d-resnet10" and "zscore" in info.resize_mode and len(info.weights_sha256) == 64
    assert model.net.layer2[0].shortcut == shortcut
    x = torch.rand(2, 1, 16, 16, 16)
    feats, logits = model(x)
    assert feats.shape == (2, 512) and logits is None and torch.isfinite(feats).all()
    # the z-scored input path: the volume is normalised before patching, so a pure offset does not move features
    vol = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    z1 = torch.from_numpy(M.normalise_volume(vol, "med3d-resnet10"))[None, None]
    z2 = torch.from_numpy(M.normalise_volume(vol * 0.5 + 0.2, "med3d-resnet10"))[None, None]
    torch.testing.assert_close(model(z1)[0], model(z2)[0], atol=1e-4, rtol=1e-4)
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    with pytest.raises(MedsynthError, match="does not fit MedicalNet"):
        M.load_med3d("med3d-resnet10", tmp_path / "other.pth")
    with pytest.raises(MedsynthError, match="never downloaded"):
        M.load_med3d("med3d-resnet10", tmp_path / "absent.pth")
    a = M.random_weights_path(0, cache)
    assert M.random_weights_path(0, cache).read_bytes() == a.read_bytes()


def test_rule_inputs_check_mode_backbone_and_scale(tmp_path):
    config = {"scale": "demo", "datasets": {"phantom_ct": {"adapter": "phantom_ct"}},
              "models": {"xing2024": {}}}
    ins = V.rule_inputs(config, "res", "patch", "med3d-random", "phantom_ct", "xing2024/val")
    assert ins == {"a": "res/data/phantom_ct/manifest.parquet", "b": "res/samples/xing2024/val/samples.csv"}
    with pytest.raises(MedsynthError, match="3D backbone"):
        V.rule_inputs(config, "res", "patch", "inception-random", "phantom_ct", "phantom_ct")
    with pytest.raises(MedsynthError, match="2D backbone"):
        V.rule_inputs(config, "res", "slice", "med3d-random", "phantom_ct", "phantom_ct")
    with pytest.raises(MedsynthError, match="med3d_weights is unset"):
        V.rule_inputs(config, "res", "patch", "med3d-resnet10", "phantom_ct", "phantom_ct")
    with pytest.raises(MedsynthError, match="paper-scale run must use real MedicalNet"):
        V.rule_inputs({**config, "scale": "paper"}, "res", "patch", "med3d-random", "phantom_ct", "phantom_ct")
    with pytest.raises(MedsynthError, match="neither a dataset"):
        V.source_table(config, "res", "nope/x")
    import re

    pattern = V.source_pattern(config)
    assert re.fullmatch(pattern, "phantom_ct") and re.fullmatch(pattern, "xing2024/reports")
    assert not re.fullmatch(pattern, "phantom_cxr")
    assert V.results_root("r/eval/volumes/xing2024/p/test/vs/phantom_ct/test/patch__med3d-random.json",
                          "xing2024/p", "phantom_ct") == "r"


def test_volume_metrics_rule_plans_from_a_target_path(tmp_path):
    """Dry run: a paper asks for one volume-metrics file; Snakemake plans one volume_metrics job over the manifest."""
    import subprocess
    import sys

    from tests.conftest import REPO

    data = tmp_path / "results" / "data" / "phantom_ct"
    data.mkdir(parents=True)
    pd.DataFrame({"id": ["0"], "image": ["x.npz"], "split": ["test"]}).to_parquet(data / "manifest.parquet")
    target = "results/eval/volumes/phantom_ct/train/vs/phantom_ct/val+test/patch__med3d-random.json"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), "--cores", "1", "-n", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "volume_metrics" in out and "preprocess_shard" not in out
    bad = target.replace("patch__med3d-random", "patch__inception-random")
    proc = subprocess.run(cmd[:-1] + [bad], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "3D backbone" in proc.stdout + proc.stderr


def test_slice_mode_on_seeded_random_crops(tmp_path, settings):
    """xing2024's protocol: n random crops per volume, then every slice of each crop; same seed -> same crops."""
    paths = _volumes(tmp_path, 5, 2, shape=(12, 10, 8))
    crop_settings = {**settings, "eval_crop": [6, 5, 4], "eval_crops_per_volume": 3, "volume_batch_size": 5}
    seen = []
    for _ in range(2):
        spy = _Spy()
        ev = InceptionEvaluator(model=spy, info=BackboneInfo("inception-random", "w", "0" * 64), dims=3, seed=1)
        stats, count = V.set_stats(ev, "slice", paths, crop_settings)
        seen.append(torch.cat(spy.seen))
    assert count.volumes == 2 and count.items == stats.n == 2 * 3 * 4
    assert seen[0].shape == (24, 3, 6, 5)
    torch.testing.assert_close(seen[0], seen[1])
    vol = V.read_volume(paths[0])
    first = seen[0][:4, 0].numpy()  # the 4 axial slices of the first crop lie somewhere in the first volume
    hits = [(x, y, z) for x in range(7) for y in range(6) for z in range(5)
            if all(np.array_equal(first[k], vol[x:x + 6, y:y + 5, z + k]) for k in range(4))]
    assert hits
    assert V.sampling_note("slice", crop_settings)["eval_crop"] == [6, 5, 4]
    with pytest.raises(MedsynthError, match="larger than the volume"):
        V.set_stats(ev, "slice", paths, {**crop_settings, "eval_crop": [20, 5, 4]})


def test_real_side_statistics_are_computed_once_and_reused(settings, sets, cache, tmp_path):
    ev = V.volume_evaluator("patch", "med3d-random", settings, seed=0, cache_dir=cache)
    plain = V.volume_records(ev, "patch", sets["a"], sets["b"], settings)
    calls = []
    real_stats = ev.stats
    ev.stats = lambda batches: calls.append(1) or real_stats(batches)
    first = V.volume_records(ev, "patch", sets["a"], sets["b"], settings, a_cache=tmp_path)
    second = V.volume_records(ev, "patch", sets["a"], sets["shifted"], settings, a_cache=tmp_path)
    assert len(calls) == 3  # a once, b, shifted: the second table row read a's statistics back
    assert len(list((tmp_path / "volume_sets").glob("*.npz"))) == 1
    for key in ("fid", "kid"):  # bit-identical to computing both sides
        assert first[key]["value"] == plain[key]["value"]
    assert second["fid"]["extra"]["a"] == plain["fid"]["extra"]["a"]
    # another cut of the same files is another key, never a stale read
    V.volume_records(ev, "patch", sets["a"], sets["b"], {**settings, "patch_stride": [4, 4, 4]}, a_cache=tmp_path)
    assert len(list((tmp_path / "volume_sets").glob("*.npz"))) == 2
