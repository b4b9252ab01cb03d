"""NIQE against a reference value, and the no-reference statistics against hand-checked values."""
import numpy as np
import pytest
from skimage import data

from medsynth.errors import MedsynthError
from medsynth.metrics import noref as N


def test_niqe_matches_reference_implementation_on_camera():
    # 3.0962066 is basicsr 1.4.2's calculate_niqe (documented to match the official MATLAB release to 4 decimals)
    # on scikit-image's 512x512 `camera`, with its shipped pristine parameters; basicsr filters in float32,
    # we in float64 as MATLAB does, hence the 1e-4 tolerance (we differ by 4e-6).
    assert N.niqe(data.camera()) == pytest.approx(3.0962066, abs=1e-4)


def test_niqe_rises_with_blur_and_reads_stated_params(tmp_path):
    from scipy import ndimage

    img = data.camera()[:192, :288]
    blurred = ndimage.gaussian_filter(img.astype(float), 2.0)
    assert N.niqe(blurred / 255.0) > N.niqe(img) + 1
    mu, cov, win = N.niqe_params()
    np.savez(tmp_path / "p.npz", mu_pris_param=mu[None], cov_pris_param=cov)  # no window: MATLAB's is rebuilt
    np.testing.assert_allclose(N.niqe_params(tmp_path / "p.npz")[2], win, atol=1e-6)
    assert N.niqe(img, params_path=tmp_path / "p.npz") == pytest.approx(N.niqe(img), rel=1e-5)
    np.savez(tmp_path / "bad.npz", mu_pris_param=mu[:5])
    with pytest.raises(MedsynthError, match="pristine"):
        N.niqe(img, params_path=tmp_path / "bad.npz")
    with pytest.raises(MedsynthError, match="two 96x96 blocks"):
        N.niqe(img[:100, :100])


def test_matlab_imresize_half_is_antialiased_bicubic():
    # Kernel 0.5 * cubic(0.5 d) at d = 0.5, 1.5, 2.5, 3.5: 0.43359375, 0.11328125, -0.03515625, -0.01171875.
    x = np.tile(np.array([0.0, 1.0]), (6, 16))  # 6 x 32 vertical stripes 0,1,0,1,...
    out = N.matlab_imresize(x, 0.5)
    assert out.shape == (3, 16)
    # interior: every distance pairs a 0 with a 1 -> half the kernel sum
    np.testing.assert_allclose(out[:, 2:14], 0.5, atol=1e-12)
    # first column, symmetric padding (1-based indices 0, -1, -2 mirror to 1, 2, 3):
    # ones at input 2 (w 0.43359375) and mirrored -1 and input 4 (both -0.03515625)
    np.testing.assert_allclose(out[:, 0], 0.43359375 - 2 * 0.03515625, atol=1e-12)
    np.testing.assert_allclose(N.matlab_imresize(np.full((6, 10), 0.3), 0.5), 0.3)  # weights sum to 1


def test_contrast_sharpness_entropy_hand_checked():
    half = np.zeros((10, 10), np.uint8)
    half[:, 5:] = 200
    assert N.contrast_ratio(half) == pytest.approx(1.0)  # p1 = 0
    levels = np.repeat(np.array([50, 150], np.uint8), 50).reshape(10, 10)
    assert N.contrast_ratio(levels) == pytest.approx((150 - 50) / (150 + 50))
    assert N.entropy(levels) == pytest.approx(1.0)  # two equally likely gray levels = 1 bit
    assert N.entropy(np.arange(256, dtype=np.uint8).reshape(16, 16)) == pytest.approx(8.0)
    assert N.sharpness(np.full((8, 8), 77, np.uint8)) == 0.0
    import cv2

    cam = data.camera()
    assert N.sharpness(cam) == pytest.approx(cv2.Laplacian(cam, cv2.CV_64F).var())
    assert N.sharpness(cam / 255.0) == pytest.approx(N.sharpness(cam))  # floats are read on [0, 1]
    with pytest.raises(MedsynthError, match="data_range"):
        N.entropy(np.full((4, 4), 300.0))
