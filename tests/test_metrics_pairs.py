"""RMSE / PSNR / SSIM / MS-SSIM on pairs whose values can be worked out by hand."""
import numpy as np
import pytest

from medsynth.errors import MedsynthError
from medsynth.metrics import pairs as P


def test_rmse_psnr_known_offsets():
    a = np.zeros((8, 8), np.uint8)
    b = np.full((8, 8), 10, np.uint8)
    assert P.rmse(a, b) == pytest.approx(10.0)
    assert P.psnr(a, b) == pytest.approx(20 * np.log10(255 / 10))  # 28.13 dB
    # floats on [0, 1] are reported on the same 0-255 scale
    assert P.rmse(np.zeros((4, 4)), np.full((4, 4), 0.1)) == pytest.approx(25.5)
    assert P.rmse(np.zeros((4, 4)), np.full((4, 4), 0.1), scale=1.0) == pytest.approx(0.1)
    # a 12-bit image with its range stated
    assert P.psnr(np.zeros((4, 4)), np.full((4, 4), 40.95), data_range=4095) == pytest.approx(40.0)
    assert P.psnr(a, a) == float("inf")


def test_ssim_constant_images_is_the_luminance_term():
    x, y = np.full((32, 32), 0.5), np.full((32, 32), 0.25)
    c1 = 0.01 ** 2
    expected = (2 * 0.5 * 0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1)  # 0.80006; contrast-structure term is 1
    assert P.ssim(x, y) == pytest.approx(expected, rel=1e-9)
    assert P.ssim(x, x) == pytest.approx(1.0)


def test_ssim_drops_with_noise_and_single_scale_ms_ssim_matches_it():
    rng = np.random.default_rng(0)
    img = np.clip(np.kron(rng.random((12, 12)), np.ones((8, 8))), 0, 1)  # 96x96 blocky texture
    mild = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    strong = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    s_mild, s_strong = P.ssim(img, mild), P.ssim(img, strong)
    assert 1 > s_mild > s_strong > 0
    # our valid-window Gaussian SSIM is scikit-image's Gaussian SSIM: one MS-SSIM scale reproduces it
    assert P.ms_ssim(img, strong, scales=1) == pytest.approx(s_strong, rel=1e-6)
    assert P.ms_ssim(img, img, scales=3) == pytest.approx(1.0)


def test_ms_ssim_five_scales_constant_images():
    x, y = np.full((176, 176), 0.5), np.full((176, 176), 0.25)
    lum = (2 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4)
    w5 = 0.1333  # only the coarsest scale has a luminance term; 5 scales: the published weight, not renormalised
    assert P.ms_ssim(x, y) == pytest.approx(lum ** w5, rel=1e-9)
    with pytest.raises(MedsynthError, match="fewer scales"):
        P.ms_ssim(x[:100, :100], y[:100, :100])


def test_ms_ssim_diversity_over_pairs():
    rng = np.random.default_rng(1)
    samples = [rng.random((48, 48)) for _ in range(3)]
    mean, std, n = P.ms_ssim_diversity(samples, scales=2)
    assert n == 3 and 0 <= mean < 0.5 and std >= 0
    same = P.ms_ssim_diversity([samples[0]] * 3, scales=2)
    assert same[0] == pytest.approx(1.0) and same[2] == 3
    with pytest.raises(MedsynthError, match="at least 2"):
        P.ms_ssim_diversity(samples[:1])


def test_bad_pairs_raise():
    with pytest.raises(MedsynthError, match="differ in size"):
        P.rmse(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(MedsynthError, match="data_range"):
        P.rmse(np.zeros((4, 4)), np.full((4, 4), 3.0))
    with pytest.raises(MedsynthError, match="grayscale"):
        P.ssim(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4, 1)))
    assert P.summarize([1.0, 3.0]) == (2.0, 1.0, 2)


def test_image_quality_of_a_sample_set(tmp_path):
    import pandas as pd
    from PIL import Image

    from medsynth.metrics import noref
    from medsynth.metrics.quality import image_quality, ms_ssim_scales

    assert [ms_ssim_scales(s) for s in (10, 11, 64, 160, 161, 512)] == [0, 1, 3, 4, 5, 5]
    rng = np.random.default_rng(0)
    (tmp_path / "gen").mkdir()
    imgs = [np.clip(np.kron(rng.random((8, 8)), np.ones((8, 8))) * 255, 0, 255).astype(np.uint8) for _ in range(4)]
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / "gen" / f"{i}.png")
    Image.fromarray(imgs[0]).resize((128, 128), Image.Resampling.NEAREST).save(tmp_path / "real0.png")
    samples = pd.DataFrame({"file": [f"{i}.png" for i in range(4)], "prompt": ["a", "a", "b", "b"],
                            "source_image": ["real0.png", "gen/1.png", "gen/2.png", "gen/3.png"]})
    out = image_quality(samples, tmp_path / "gen", results=tmp_path)
    assert out["n"] == 4 and out["image_sizes"] == ["64x64"]
    assert out["entropy"]["mean"] == pytest.approx(np.mean([noref.entropy(i) for i in imgs]))
    # three of four pairs are identical (SSIM 1, PSNR infinite); the first is its real image resized back (bicubic)
    assert out["psnr"]["n_infinite"] == 3 and out["psnr"]["n"] == 1
    assert out["ssim"]["n"] == 4 and 0.75 < out["ssim"]["mean"] <= 1.0
    assert "3 scales" in out["ms_ssim"]["definition"]
    div = out["ms_ssim_diversity"]
    assert div["prompts"] == 2 and div["mean"] == pytest.approx(
        np.mean([P.ms_ssim(imgs[0], imgs[1], scales=3), P.ms_ssim(imgs[2], imgs[3], scales=3)]))
    assert out["niqe"]["mean"] is None and "192x96" in out["niqe"]["not_computed"]
    no_pairs = image_quality(samples[["file"]], tmp_path / "gen")
    assert "ssim" not in no_pairs and "ms_ssim_diversity" not in no_pairs
    from skimage import data

    Image.fromarray(data.camera()[:96, :192]).save(tmp_path / "gen" / "cam.png")
    niqe = image_quality(pd.DataFrame({"file": ["cam.png"]}), tmp_path / "gen")["niqe"]
    assert niqe["n"] == 1 and niqe["mean"] == pytest.approx(noref.niqe(data.camera()[:96, :192]))
