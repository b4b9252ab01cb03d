"""FID / KID / IS: backbone loading, parity with pytorch-fid's network, streaming statistics, cache, known values."""
import numpy as np
import pytest
import torch

from medsynth.errors import MedsynthError
from medsynth.metrics import fid as F
from medsynth.metrics import inception as I
from medsynth.metrics.stats import CachedStats, FeatureStats

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics_cache")


@pytest.fixture(scope="module")
def ev64(cache_dir):
    return F.InceptionEvaluator.create(backbone="inception-random", dims=64, cache_dir=cache_dir, is_splits=2)


def _images(seed, n, size=24, bright=0.0):
    rng = np.random.default_rng(seed)
    base = rng.random((n, size, size)) * 0.6 + bright
    return np.clip(base, 0, 1).astype(np.float32)


def test_random_backbone_file_is_reproducible_and_recorded(tmp_path, cache_dir):
    a = I.random_weights_path(0, tmp_path / "a")
    b = I.random_weights_path(0, tmp_path / "b")
    assert a.name.endswith(".safetensors")
    assert I.sha256_file(a) == I.sha256_file(b)
    assert I.sha256_file(I.random_weights_path(1, tmp_path / "a")) != I.sha256_file(a)
    _, info = I.load_backbone("inception-random", dims=64, cache_dir=tmp_path / "a")
    assert info.backbone == "inception-random" and info.weights_sha256 == I.sha256_file(a)
    assert info.resize_mode == "bilinear-299-in-model"


def test_missing_fid_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MedsynthError, match="pt_inception-2015-12-05-6726825d.pth.*inception-random"):
        I.load_backbone("inception-fid")
    with pytest.raises(MedsynthError, match="unknown metrics backbone"):
        I.load_backbone("vgg")


def test_features_match_pytorch_fid_inception_with_same_weights(tmp_path, monkeypatch):
    """A .pth where pytorch-fid looks for its weights: our network and pytorch_fid.inception.InceptionV3 agree."""
    from pytorch_fid.inception import InceptionV3

    ckpt = tmp_path / "hub" / "checkpoints" / I.FID_WEIGHTS_FILE
    ckpt.parent.mkdir(parents=True)
    torch.save(I.random_state_dict(3), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert I.default_fid_weights_path() == ckpt
    ours, info = I.load_backbone("inception-fid", dims=192)  # user .pth read with weights_only=True
    ref = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[192]]).eval()
    x = F.to_batch(_images(0, 2, size=40))
    with torch.no_grad():
        expected = torch.nn.functional.adaptive_avg_pool2d(ref(x)[0], (1, 1)).flatten(1)
    got, logits = ours(x)
    assert logits is None and got.shape == (2, 192)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert info.weights_sha256 == I.sha256_file(ckpt)


def test_streaming_stats_equal_batch_stats():
    rng = np.random.default_rng(1)
    feats = rng.normal(5.0, 2.0, (57, 6))  # large mean: a naive sum of outer products would lose precision
    stats = FeatureStats(6, reservoir_size=20, seed=0)
    for chunk in np.array_split(feats, [3, 4, 20, 40]):
        stats.update(chunk)
    assert stats.n == 57
    np.testing.assert_allclose(stats.mu, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(feats, rowvar=False), rtol=1e-10)
    res = stats.kid_features()
    assert res.shape == (20, 6)  # bounded reservoir, rows are real samples
    assert all(any(np.allclose(r, f, atol=1e-5) for f in feats) for r in res)


def test_fid_self_zero_symmetric_and_positive(ev64):
    a = ev64.stats([_images(0, 40)[:20], _images(0, 40)[20:]])
    a2 = ev64.stats([_images(0, 40)])
    b = ev64.stats([_images(1, 40, bright=0.4)])
    assert ev64.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert ev64.fid(a, a2) == pytest.approx(0.0, abs=1e-6)  # batching does not change the statistics
    ab, ba = ev64.fid(a, b), ev64.fid(b, a)
    assert ab > 1e-3 and ab == pytest.approx(ba, rel=1e-9)
    assert ab == pytest.approx(ev64.fid(a, b, method="pytorch-fid"), rel=1e-6)


def test_frechet_distance_closed_form():
    # Commuting (diagonal) covariances: tr sqrt(S1 S2) = sum sqrt(s1 s2).
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 0.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + 14 + 5 - 2 * (2 + 2 + 0)
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)


def _expected_poly3(q1, q2, c, d):
    """E[(x.y/d + 1)^3] for independent x ~ N(m1, I), y ~ N(m2, I); q = |m|^2, c = m1.m2."""
    ea, ea2 = c, c * c + q1 + q2 + d
    ea3 = c ** 3 + 3 * c * (q1 + q2 + d) + 6 * c
    return 1 + 3 * ea / d + 3 * ea2 / d ** 2 + ea3 / d ** 3


def test_kid_unbiased_on_gaussians():
    d, n = 8, 600
    rng = np.random.default_rng(0)
    x, x2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    shift = np.full(d, 0.5)
    y = rng.normal(size=(n, d)) + shift
    same, same_std, m = F.kernel_inception_distance(x, x2, subsets=50, subset_size=300, seed=0)
    assert m == 300 and abs(same) < 3 * same_std + 1e-4
    q = float(shift @ shift)
    closed = _expected_poly3(0, 0, 0, d) + _expected_poly3(q, q, q, d) - 2 * _expected_poly3(0, q, 0, d)
    kid, kid_std, _ = F.kernel_inception_distance(x, y, subsets=50, subset_size=300, seed=0)
    assert kid == pytest.approx(closed, abs=max(3 * kid_std, 0.02 * closed))
    assert F.kernel_inception_distance(x, y, subsets=5, seed=1) == F.kernel_inception_distance(x, y, subsets=5, seed=1)


def test_inception_score_streaming_and_known_values():
    k = 1008
    st = FeatureStats(2, is_splits=2)
    onehot = np.full((4, k), -1e4)
    onehot[np.arange(4), [0, 1, 2, 3]] = 0.0  # confident, distinct: each split of 2 images -> IS = 2
    st.update(np.zeros((4, 2)), onehot)
    assert st.inception_score() == pytest.approx((2.0, 0.0), abs=1e-9)
    flat = FeatureStats(2, is_splits=2)
    flat.update(np.zeros((6, 2)), np.zeros((6, k)))  # uniform predictions -> IS = 1
    assert flat.inception_score() == pytest.approx((1.0, 0.0), abs=1e-9)
    # streamed (3 batches) == all at once
    logits = np.random.default_rng(0).normal(size=(9, k)) * 3
    one, many = FeatureStats(2, is_splits=3), FeatureStats(2, is_splits=3)
    one.update(np.zeros((9, 2)), logits)
    for sl in (slice(0, 2), slice(2, 7), slice(7, 9)):
        many.update(np.zeros((sl.stop - sl.start, 2)), logits[sl])
    assert many.inception_score() == pytest.approx(one.inception_score(), rel=1e-12)
    with pytest.raises(MedsynthError, match="logits"):
        FeatureStats(2).inception_score()


def test_records_from_full_backbone(cache_dir):
    ev = F.InceptionEvaluator.create(backbone="inception-random", dims=2048, cache_dir=cache_dir, is_splits=2)
    ref, gen = ev.stats([_images(2, 4, size=16)]), ev.stats([_images(3, 4, size=16, bright=0.3)])
    mean, std = gen.inception_score()
    assert gen.mu.shape == (2048,) and 1.0 <= mean < 1008 and std >= 0
    recs = {r.metric: r for r in F.generative_records(ev, ref, gen, kid_subsets=3, extra={"split": "test"})}
    assert set(recs) == {"fid", "kid", "is"}
    assert recs["fid"].value > 0 and recs["fid"].weights_sha256 == ev.info.weights_sha256
    assert recs["kid"].std is not None and recs["kid"].extra["subset_size"] == 4
    assert recs["is"].value == pytest.approx(mean) and recs["is"].is_substitute_backbone
    assert recs["fid"].extra == {"n_reference": 4, "n_generated": 4, "dims": 2048, "split": "test", "stand_in": True,
                                 "weights": I.random_weights_path(0, cache_dir).name}


def test_reference_stats_cache_is_reused(ev64, tmp_path):
    calls = []

    def batches():
        calls.append(1)
        return [_images(5, 12)]

    first = ev64.reference_stats(tmp_path, "openi", "test", batches)
    second = ev64.reference_stats(tmp_path, "openi", "test", batches)
    assert len(calls) == 1 and isinstance(second, CachedStats)
    np.testing.assert_allclose(second.sigma_sqrt @ second.sigma_sqrt, second.sigma, atol=1e-10)
    other = ev64.stats([_images(6, 12)])
    fresh = ev64.stats([_images(5, 12)])  # same images, no cached square root
    assert ev64.fid(second, other) == pytest.approx(ev64.fid(fresh, other), rel=1e-9)
    assert ev64.fid(other, second) == pytest.approx(ev64.fid(fresh, other), rel=1e-9)
    np.testing.assert_allclose(second.mu, first.mu)
    np.testing.assert_allclose(second.sigma, first.sigma)
    assert second.kid_features().shape == (12, 64)
    assert second.meta["backbone"] == "inception-random" and second.meta["n"] == 12
    (path,) = tmp_path.glob("*.npz")
    assert path.name.startswith("openi__test__inception-random-") and "bilinear-299" in path.name
    with np.load(path) as raw:  # pytorch-fid reads exactly these keys
        assert raw["mu"].shape == (64,) and raw["sigma"].shape == (64, 64)


def test_folder_batches_read_like_pytorch_fid(tmp_path):
    from PIL import Image

    imgs = (_images(7, 3, size=10) * 255).astype(np.uint8)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "z.png")
    batches = list(F.folder_batches(tmp_path, batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 10, 10), (1, 3, 10, 10), (1, 3, 12, 12)]
    torch.testing.assert_close(batches[0][0, 1], torch.from_numpy(imgs[0]).float() / 255)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="unreadable image"):
        list(F.folder_batches(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedsynthError, match="no images"):
        F.list_images(tmp_path / "empty")


def test_to_batch_rejects_bad_ranges_and_shapes():
    with pytest.raises(MedsynthError, match=r"\[0, 1\]"):
        F.to_batch(np.full((4, 4), 2.0, np.float32))
    with pytest.raises(MedsynthError, match="shape"):
        F.to_batch(np.zeros((2, 3, 4, 5, 6)))
    assert tuple(F.to_batch(np.zeros((5, 6), np.uint8)).shape) == (1, 3, 5, 6)
    assert tuple(F.to_batch(np.zeros((2, 5, 6, 3), np.uint8)).shape) == (2, 3, 5, 6)


def test_frechet_distance_rank_deficient_self_is_zero():
    # fewer samples than dims (the usual small-N case): the null space's rounding noise must not leak into the trace
    x = np.random.default_rng(0).normal(size=(5, 300)) * 300.0
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert abs(F.frechet_distance(mu, sigma, mu, sigma)) <= 1e-9 * np.trace(sigma)
    y = x + np.random.default_rng(1).normal(size=x.shape)
    d = F.frechet_distance(mu, sigma, y.mean(0), np.cov(y, rowvar=False))
    assert d > 0 and d == pytest.approx(F.frechet_distance(y.mean(0), np.cov(y, rowvar=False), mu, sigma), rel=1e-6)
