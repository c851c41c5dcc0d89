"""PSNR and SSIM on hand-made images with known answers."""
import math

import numpy as np
import pytest

from backend.metrics.image import image_metrics, psnr, ssim, ssim_map


def texture(h=32, w=40, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + 0.2 * rng.standard_normal((h, w, 3)), 0, 1)


def test_psnr_of_a_known_mse():
    a = np.zeros((8, 8))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)               # MSE 0.01
    assert psnr(a, a + 25.5, data_range=255) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf


def test_masked_psnr_ignores_the_other_side():
    a = np.zeros((8, 8, 3))
    b = a.copy()
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    b[mask] = 0.01                                                # MSE 1e-4 inside: 40 dB
    assert psnr(a, b, mask) == pytest.approx(40.0)
    assert psnr(a, b, ~mask) == math.inf
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / 5e-5))
    assert math.isnan(psnr(a, b, np.zeros((8, 8), bool)))


def test_ssim_of_identical_and_noisy_images():
    img = texture()
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + 0.1 * np.random.default_rng(1).standard_normal(img.shape), 0, 1)
    value = ssim(img, noisy)
    assert 0.0 < value < 0.9
    assert ssim(noisy, img) == pytest.approx(value)
    assert ssim(img, np.clip(img + 0.02 * np.random.default_rng(1).standard_normal(img.shape), 0, 1)) > value


def test_ssim_of_two_flat_images_is_the_luminance_term():
    # No variance: SSIM = (2 μa μb + C1) / (μa² + μb² + C1), with C1 = (0.01)².
    a, b = np.full((20, 20), 0.5), np.full((20, 20), 0.6)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.3 + c1) / (0.25 + 0.36 + c1))


def test_ssim_matches_a_direct_gaussian_window_computation():
    # Independent check of the window (11x11, σ = 1.5, normalised) and of the 'valid' interior.
    a, b = texture(16, 17, 2)[..., 0], texture(16, 17, 3)[..., 0]
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(5, 16 - 5):
        for j in range(5, 17 - 5):
            pa, pb = a[i - 5:i + 6, j - 5:j + 6], b[i - 5:i + 6, j - 5:j + 6]
            ma, mb = (win * pa).sum(), (win * pb).sum()
            va, vb = (win * pa * pa).sum() - ma**2, (win * pb * pb).sum() - mb**2
            cov = (win * pa * pb).sum() - ma * mb
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(a, b) == pytest.approx(np.mean(values), rel=1e-9)


def test_masked_ssim_ignores_pixels_far_outside_the_mask():
    img = texture(32, 48)
    noisy = img.copy()
    noisy[:, :16] = np.clip(noisy[:, :16] + 0.2 * np.random.default_rng(4).standard_normal((32, 16, 3)), 0, 1)
    right = np.zeros((32, 48), bool)
    right[:, 24:] = True                       # 8 px clear of the noise: the 11x11 window never reaches it
    assert ssim(img, noisy, right) == pytest.approx(1.0)
    assert ssim(img, noisy, ~right) < 0.9
    m = image_metrics(noisy, img, ~right)
    assert m.ssim_outside == pytest.approx(1.0) and m.psnr_outside == math.inf
    assert m.ssim_inside == pytest.approx(ssim(img, noisy, ~right))
    assert m.psnr == pytest.approx(psnr(noisy, img)) and m.ssim == pytest.approx(ssim(noisy, img))
    assert math.isnan(image_metrics(noisy, img).psnr_inside)
    assert ssim_map(img, noisy).shape == (32, 48)
