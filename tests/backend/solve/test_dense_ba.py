"""Dense bundle adjustment: the analytic Jacobian, and known answers on synthetic correspondences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.metrics.camera import camera_errors
from backend.solve import dense_ba
from backend.solve.track import so3_exp

from .synthetic import perturbed, scene


def _stack_K(track):
    return np.repeat(track.intrinsics.K[None], track.frames, 0)


def test_jacobian_matches_finite_differences():
    """Each of the 16 local parameters, in float64, against central differences of the same model."""
    rng = np.random.default_rng(0)
    m = 7
    Ra = torch.tensor(so3_exp(rng.normal(0, 0.3, (m, 3))))
    Rb = torch.tensor(so3_exp(rng.normal(0, 0.3, (m, 3))))
    ca = torch.tensor(rng.normal(0, 0.5, (m, 3)))
    cb = torch.tensor(rng.normal(0, 0.5, (m, 3)))
    intr = torch.tensor([[150.0, 80.0, 60.0]]).repeat(m, 1)
    rho = torch.tensor(rng.uniform(0.1, 0.3, m))
    uref = torch.tensor(rng.uniform(20, 140, (m, 2)))
    uobs = torch.tensor(rng.uniform(20, 140, (m, 2)))
    _, _, J = dense_ba._residual(Ra, ca, Rb, cb, intr, rho, uref, uobs, jacobian=True)

    def perturbed_residual(k, eps):
        d = np.zeros(16)
        d[k] = eps
        ra = torch.tensor(so3_exp(np.tile(d[0:3], (m, 1)))) @ Ra
        rb = torch.tensor(so3_exp(np.tile(d[6:9], (m, 1)))) @ Rb
        return dense_ba._residual(ra, ca + torch.tensor(d[3:6]), rb, cb + torch.tensor(d[9:12]),
                                  intr + torch.tensor(d[12:15]), rho + d[15], uref, uobs, jacobian=False)[0]

    for k in range(16):
        eps = 1e-6
        numeric = (perturbed_residual(k, eps) - perturbed_residual(k, -eps)) / (2 * eps)
        assert torch.allclose(J[:, :, k], numeric, rtol=1e-5, atol=1e-5), k


def test_triangulation_is_exact_without_noise():
    truth, corr, rho = scene(frames=6, noise_px=0.0)
    assert np.allclose(dense_ba.triangulate_inverse_depth(truth, corr), rho, rtol=1e-6)


def test_bundle_adjustment_undoes_perturbed_poses_and_focal():
    truth, corr, _ = scene(frames=10, noise_px=0.2)
    start = perturbed(truth, rotation_deg=0.5, centre=0.03, focal_factor=1.06)
    before = camera_errors(start.world_from_camera(), truth.world_from_camera(), _stack_K(start), _stack_K(truth))
    result = dense_ba.bundle_adjust(start, corr)
    after = camera_errors(result.track.world_from_camera(), truth.world_from_camera(), _stack_K(result.track), _stack_K(truth))
    assert after.ate < 0.1 * before.ate
    assert after.focal_percent < 0.5 < before.focal_percent
    assert after.orientation_mean_deg < 0.05
    assert result.median_px < 0.3  # the noise level, not the perturbation
    assert result.cost_history[-1] < result.cost_history[0]


def test_rotation_only_solve_recovers_a_pan_and_its_focal():
    truth, corr, _ = scene(frames=10, translation=False, noise_px=0.1)
    start = perturbed(truth, rotation_deg=0.3, centre=0.0, focal_factor=0.93)
    result = dense_ba.bundle_adjust(start, corr, options=dense_ba.BAOptions(rotation_only=True))
    assert np.all(result.track.centre == 0) and np.all(result.inverse_depth == 0)
    assert result.track.intrinsics.f == pytest.approx(truth.intrinsics.f, rel=0.005)
    relative = np.einsum("fji,fjk->fik", truth.rotation, result.track.rotation)
    angles = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() < 0.05


def test_outliers_barely_move_the_solution():
    """A tenth of the observations thrown 5-20 px off (what a missed moving object does): the Cauchy loss
    keeps the cameras where the clean solve puts them."""
    truth, corr, _ = scene(frames=8, noise_px=0.1, seed=3)
    rng = np.random.default_rng(5)
    bad = rng.random(corr.observations) < 0.1
    corr.xy[bad] += rng.uniform(5, 20, (bad.sum(), 2)) * rng.choice([-1, 1], (bad.sum(), 2))
    result = dense_ba.bundle_adjust(perturbed(truth, 0.3, 0.02, 1.03), corr)
    errors = camera_errors(result.track.world_from_camera(), truth.world_from_camera(), _stack_K(result.track), _stack_K(truth))
    assert errors.focal_percent < 0.5 and errors.ate_percent < 0.5
    assert np.median(result.residual_px[bad]) > 3.0 > np.median(result.residual_px[~bad]) * 10


def test_principal_point_can_be_refined_and_reports_its_uncertainty():
    truth, corr, _ = scene(frames=10, noise_px=0.1)
    options = dense_ba.BAOptions(refine_principal_point=True)
    result = dense_ba.bundle_adjust(perturbed(truth, 0.2, 0.01, 1.02), corr, options=options)
    assert result.principal_point_std_px is not None and 0 < result.principal_point_std_px < 2.0
    assert abs(result.track.intrinsics.cx - truth.intrinsics.cx) < 3 * result.principal_point_std_px + 0.5


@pytest.mark.parametrize("cx, cy, refined", [(80.0, 60.0, False), (92.0, 52.0, True)])
def test_the_principal_point_moves_only_where_the_data_pins_it(cx, cy, refined):
    from backend.stages.solve import _principal_point
    from backend.solve.track import Intrinsics

    truth, corr, _ = scene(frames=10, noise_px=0.1)
    # Shifting every pixel coordinate by the same offset is the same rays seen by a camera whose principal
    # point is shifted by it; the solve starts from the image centre.
    corr.xy = corr.xy + [cx - 80.0, cy - 60.0]
    corr.ref_xy = corr.ref_xy + [cx - 80.0, cy - 60.0]
    fixed = dense_ba.bundle_adjust(truth.copy(intrinsics=Intrinsics(150.0, 80.0, 60.0)), corr)
    result, description = _principal_point(fixed, corr, dense_ba.BAOptions(), "cpu")
    assert description.startswith("refined") == refined, description
    if refined:
        assert result.track.intrinsics.cx == pytest.approx(cx, abs=0.5)
        assert result.track.intrinsics.cy == pytest.approx(cy, abs=0.5)
