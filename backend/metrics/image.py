"""Image-similarity metrics: PSNR and SSIM (Wang et al. 2004), whole image or inside / outside a mask.

numpy + OpenCV (for the Gaussian window). Images are float arrays in [0, data_range], (H, W) or (H, W, C);
a mask is (H, W) bool, True = the region of interest (e.g. the removed object of a clean plate).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

SSIM_WINDOW = 11       # Gaussian window of Wang et al. 2004: 11×11, σ = 1.5
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape and a.ndim in (2, 3), (a.shape, b.shape)
    if mask is None:
        mask = np.ones(a.shape[:2], bool)
    mask = np.asarray(mask, bool)
    assert mask.shape == a.shape[:2], (mask.shape, a.shape)
    return a, b, mask


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 · log10(data_range² / MSE), in dB.

    MSE is the mean squared difference over all channels of the pixels where `mask` is True (every pixel
    without a mask). Identical images give +inf; an empty mask gives NaN.
    """
    a, b, mask = _pair(a, b, mask)
    if not mask.any():
        return float("nan")
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-pixel SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, eq. 13), averaged over channels: (H, W).

    SSIM = ((2 μa μb + C1)(2 σab + C2)) / ((μa² + μb² + C1)(σa² + σb² + C2)), with local statistics weighted
    by an 11×11 Gaussian window of σ = 1.5 (population, not sample, covariances), C1 = (0.01 L)²,
    C2 = (0.03 L)², L = data_range. Colour images: SSIM per channel, then the mean (as scikit-image does).
    The 5-pixel border, where the window leaves the image, is computed with reflected borders but not used
    by `ssim` (see there).
    """
    a, b, _ = _pair(a, b, None)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT_101)
        return out.reshape(x.shape)

    maps = []
    for ch in range(a.shape[2]):
        x, y = np.ascontiguousarray(a[..., ch]), np.ascontiguousarray(b[..., ch])
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        maps.append(num / den)
    return np.mean(maps, axis=0)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean SSIM: the average of `ssim_map` over the pixels where `mask` is True and the 11×11 window lies
    wholly inside the image (the 'valid' region of Wang et al.'s reference code and of scikit-image, so the
    unmasked value matches `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`). Windows straddling the mask's edge see pixels on both sides: masked SSIM
    measures structure near the region, not within a hard cut. NaN when no pixel is left.
    """
    a, b, mask = _pair(a, b, mask)
    return _mean_over(ssim_map(a, b, data_range), mask)


def _mean_over(smap: np.ndarray, mask: np.ndarray) -> float:
    """Mean of an SSIM map over mask ∩ the valid interior (5 px from every edge)."""
    pad = SSIM_WINDOW // 2
    interior = np.zeros(smap.shape, bool)
    interior[pad:-pad, pad:-pad] = True
    sel = mask & interior
    return float(np.mean(smap[sel])) if sel.any() else float("nan")


@dataclass
class MaskedImageMetrics:
    """PSNR (dB) and SSIM over the whole image, inside the mask and outside it."""

    psnr: float
    ssim: float
    psnr_inside: float
    ssim_inside: float
    psnr_outside: float
    ssim_outside: float

    def as_dict(self) -> dict:
        return asdict(self)


def image_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                  data_range: float = 1.0) -> MaskedImageMetrics:
    """PSNR and SSIM of `pred` against `gt`, whole image and inside/outside `mask` (NaN without a mask).
    pred, gt: (H, W) or (H, W, C) float in [0, data_range]; mask: (H, W) bool."""
    pred, gt, full = _pair(pred, gt, None)
    smap = ssim_map(pred, gt, data_range)
    nan = float("nan")
    inside = outside = (nan, nan)
    if mask is not None:
        mask = np.asarray(mask, bool)
        inside = (psnr(pred, gt, mask, data_range), _mean_over(smap, mask))
        outside = (psnr(pred, gt, ~mask, data_range), _mean_over(smap, ~mask))
    return MaskedImageMetrics(psnr(pred, gt, None, data_range), _mean_over(smap, full), *inside, *outside)
