"""Dense bundle adjustment in PyTorch: poses, focal length (optionally the principal point) and one
inverse depth per flow correspondence, refined together by Levenberg-Marquardt with a Cauchy loss.

Model (pixel-corner coordinates, OpenCV axes, R = world_from_camera rotation, c = camera centre):
a point anchored at pixel u of frame a with inverse depth rho is X = c_a + R_a K^-1 [u, 1] / rho, so its
image in frame b is  pi(K R_b^T (R_a K^-1 [u, 1] + rho (c_a - c_b))).  rho = 0 is a point at infinity:
with the centres held at 0 that is exactly the tripod (rotation-only) model, so one solver serves both.

Why Levenberg-Marquardt and not Adam/LBFGS: with one scalar unknown per point the point block of the
normal equations is diagonal, so the Schur complement onto the ~6F camera parameters is cheap and exact,
and LM converges in tens of iterations where first-order methods need thousands and stall on the
ill-conditioned focal/depth coupling. The Jacobians are analytic (forward-mode autodiff of the batched
residual made the whole solve 3x slower on a CPU); a test checks them against finite differences.

No radial distortion term: cameras.json (and the Blender camera it becomes) is a pinhole, and the rendered
test shots have none to measure one against; pycolmap's SIMPLE_RADIAL k1 is reported in cameras.json.

Gauge: the anchor frame's pose is held; the global scale is fixed after each step by keeping the median
inverse depth constant (the normal equations' scale direction is left to the damping).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..device import one_cpu_thread
from .correspondences import Correspondences
from .track import CameraTrack, Intrinsics, so3_exp

BEHIND_PENALTY_PX = 100.0  # residual charged to an observation that lands behind its camera


@dataclass(frozen=True)
class BAOptions:
    iterations: int = 30
    """Levenberg-Marquardt iterations at most (each one linearisation)."""
    tolerance: float = 1e-6
    """Stop when an iteration lowers the cost by less than this fraction (measured: the camera errors stop
    changing about there; 1e-7 took twice the iterations for no measurable gain)."""
    cauchy_px: float = 1.0
    """Scale of the Cauchy loss: residuals well above it (moving things the masks missed) barely count."""
    refine_focal: bool = True
    refine_principal_point: bool = False
    """The stage frees it only where the data pins it (stages/solve.py, `_principal_point`)."""
    rotation_only: bool = False
    """Tripod: centres held, points at infinity; solves rotations (and intrinsics) only."""
    anchor: int = 0
    """Frame whose pose is held (the gauge)."""


@dataclass
class BAResult:
    track: CameraTrack
    inverse_depth: np.ndarray   # (N,) per point, in the track's world units^-1 (0 for rotation_only)
    residual_px: np.ndarray     # (M,) reprojection error of each observation at the solution
    cost_history: list[float]
    principal_point_std_px: float | None = None
    """Marginal standard deviation of the principal point (when refined): how well the data pins it."""

    @property
    def median_px(self) -> float:
        return float(np.median(self.residual_px)) if len(self.residual_px) else float("nan")

    @property
    def rms_inlier_px(self) -> float:
        r = self.residual_px[self.residual_px < 3.0]
        return float(np.sqrt(np.mean(r**2))) if len(r) else float("nan")


def _cross_matrix(v: torch.Tensor) -> torch.Tensor:
    """(M, 3) -> (M, 3, 3) with [v]x w = v x w."""
    z = torch.zeros_like(v[:, 0])
    return torch.stack([torch.stack([z, -v[:, 2], v[:, 1]], -1), torch.stack([v[:, 2], z, -v[:, 0]], -1),
                        torch.stack([-v[:, 1], v[:, 0], z], -1)], -2)


def _residual(Ra, ca, Rb, cb, intr, rho, uref, uobs, jacobian: bool):
    """Reprojection residuals (M, 2), depth in b (M,) and, if asked, the Jacobian (M, 2, 16) with respect
    to the local parameters [rot_a 3, centre_a 3, rot_b 3, centre_b 3, f cx cy 3, rho 1]. Rotations are
    perturbed on the left in the world frame, R' = exp([w]x) R, whose derivative at w = 0 is [w]x R.

    With q = R_a ray, x_w = q + rho (c_a - c_b), x_b = R_b^T x_w = (X, Y, Z), pred = f (X, Y) / Z + (cx, cy):
    d x_b / d w_a = -R_b^T [q]x,  d x_b / d c_a = rho R_b^T = -d x_b / d c_b,  d x_b / d w_b = R_b^T [x_w]x,
    d x_b / d rho = R_b^T (c_a - c_b),  d x_b / d ray = R_b^T R_a, and d ray / d (f, cx, cy) from
    ray = ((u - cx) / f, (v - cy) / f, 1).  (Checked against finite differences in the tests.)
    """
    f, cx, cy = intr[:, 0], intr[:, 1], intr[:, 2]
    ray = torch.stack([(uref[:, 0] - cx) / f, (uref[:, 1] - cy) / f, torch.ones_like(f)], -1)
    q = torch.einsum("mij,mj->mi", Ra, ray)
    baseline = ca - cb
    xw = q + rho[:, None] * baseline
    xb = torch.einsum("mji,mj->mi", Rb, xw)
    z = xb[:, 2]
    zs = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    nx, ny = xb[:, 0] / zs, xb[:, 1] / zs
    r = torch.stack([f * nx + cx - uobs[:, 0], f * ny + cy - uobs[:, 1]], -1)
    if not jacobian:
        return r, z, None
    zero = torch.zeros_like(f)
    P = (f / zs)[:, None, None] * torch.stack([torch.stack([torch.ones_like(f), zero, -nx], -1),
                                              torch.stack([zero, torch.ones_like(f), -ny], -1)], -2)  # (M, 2, 3)
    PRbT = torch.einsum("mki,mji->mkj", P, Rb)  # P @ R_b^T
    J = torch.empty(len(f), 2, 16, dtype=r.dtype, device=r.device)
    J[:, :, 0:3] = -PRbT @ _cross_matrix(q)
    J[:, :, 3:6] = rho[:, None, None] * PRbT
    J[:, :, 6:9] = PRbT @ _cross_matrix(xw)
    J[:, :, 9:12] = -J[:, :, 3:6]
    d_ray = torch.stack([torch.stack([-ray[:, 0] / f, -1.0 / f, zero], -1),
                         torch.stack([-ray[:, 1] / f, zero, -1.0 / f], -1),
                         torch.stack([zero, zero, zero], -1)], -2)  # (M, 3 ray, 3 intrinsics)
    J[:, :, 12:15] = torch.einsum("mkj,mjl->mkl", PRbT @ Ra, d_ray)
    J[:, 0, 12] += nx
    J[:, 1, 12] += ny
    J[:, 0, 13] += 1.0
    J[:, 1, 14] += 1.0
    J[:, :, 15] = torch.einsum("mkj,mj->mk", PRbT, baseline)
    return r, z, J


class _Problem:
    """Tensors of one bundle adjustment and its parameter layout."""

    def __init__(self, track: CameraTrack, corr: Correspondences, rho: np.ndarray, options: BAOptions, device: str):
        dt = torch.float64
        self.device, self.options = device, options
        self.F = track.frames
        self.R = torch.tensor(track.rotation, dtype=dt, device=device)
        self.c = torch.tensor(track.centre, dtype=dt, device=device)
        k = track.intrinsics
        self.intr = torch.tensor([k.f, k.cx, k.cy], dtype=dt, device=device)
        self.rho = torch.tensor(rho, dtype=dt, device=device)
        order = np.lexsort((corr.frame, corr.ref_frame[corr.point]))  # group observations by frame pair
        self.obs_point = torch.tensor(corr.point[order], device=device)
        self.a = torch.tensor(corr.ref_frame[corr.point[order]], device=device)
        self.b = torch.tensor(corr.frame[order], device=device)
        self.uref = torch.tensor(corr.ref_xy, dtype=dt, device=device)[self.obs_point]
        self.uobs = torch.tensor(corr.xy[order], dtype=dt, device=device)
        self.order = order
        pair = (self.a * self.F + self.b).cpu().numpy()
        self.pair_starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1], True])
        # Global parameter layout: 6 per frame (rotation, centre), then f, cx, cy; -1 = held.
        free = np.ones((self.F, 6), bool)
        free[options.anchor] = False
        if options.rotation_only:
            free[:, 3:] = False
        intr_free = np.array([options.refine_focal, options.refine_principal_point, options.refine_principal_point])
        flat = np.concatenate([free.ravel(), intr_free])
        self.free_positions = torch.tensor(np.flatnonzero(flat), device=device)
        index = np.where(flat, np.cumsum(flat) - 1, -1)
        self.P = int(flat.sum())
        pose_index = torch.tensor(index[:-3].reshape(self.F, 6), device=device)
        intr_index = torch.tensor(index[-3:], device=device)
        cols = torch.cat([pose_index[self.a], pose_index[self.b], intr_index.expand(len(self.a), 3)], 1)
        self.cols = torch.where(cols < 0, torch.full_like(cols, self.P), cols)  # P: a dummy column, dropped
        self.free_points = not options.rotation_only
        self.N = len(self.rho)

    def evaluate(self, R, c, intr, rho, jacobian: bool):
        return _residual(R[self.a], c[self.a], R[self.b], c[self.b], intr.expand(len(self.a), 3),
                         rho[self.obs_point], self.uref, self.uobs, jacobian)

    def cost(self, r, z) -> tuple[torch.Tensor, torch.Tensor]:
        """Cauchy cost and the IRLS weight of each observation."""
        s2 = self.options.cauchy_px ** 2
        sq = (r**2).sum(-1)
        behind = z <= 1e-9
        sq = torch.where(behind, torch.full_like(sq, BEHIND_PENALTY_PX**2), sq)
        w = torch.where(behind, torch.zeros_like(sq), 1.0 / (1.0 + sq / s2))
        return (s2 * torch.log1p(sq / s2)).sum(), w

    def normal_equations(self, r, J, w):
        P, dev = self.P, r.device
        Jc, Jp = J[..., :15], J[..., 15]
        Jcw = Jc * w[:, None, None]
        H = torch.zeros(P + 1, P + 1, dtype=r.dtype, device=dev)
        for s, e in zip(self.pair_starts[:-1], self.pair_starts[1:]):  # one 15x15 block per frame pair
            block = Jcw[s:e].reshape(-1, 15).T @ Jc[s:e].reshape(-1, 15)
            idx = self.cols[s]
            H.index_put_((idx[:, None].expand(15, 15), idx[None, :].expand(15, 15)), block, accumulate=True)
        g = torch.zeros(P + 1, dtype=r.dtype, device=dev).index_add_(0, self.cols.reshape(-1), torch.einsum("mki,mk->mi", Jcw, r).reshape(-1))
        if not self.free_points:
            return H[:P, :P], g[:P], None, None, None
        D = torch.zeros(self.N, dtype=r.dtype, device=dev).index_add_(0, self.obs_point, (Jp**2).sum(-1) * w)
        gp = torch.zeros(self.N, dtype=r.dtype, device=dev).index_add_(0, self.obs_point, (Jp * r).sum(-1) * w)
        Bv = torch.einsum("mki,mk->mi", Jcw, Jp)  # (M, 15)
        B = torch.zeros((P + 1) * self.N, dtype=r.dtype, device=dev)
        B.index_add_(0, (self.cols * self.N + self.obs_point[:, None]).reshape(-1), Bv.reshape(-1))
        return H[:P, :P], g[:P], B.reshape(P + 1, self.N)[:P], D, gp

    def solve(self, H, g, B, D, gp, lam):
        diag = torch.diagonal(H)
        Hd = H + torch.diag(lam * diag + 1e-9 * (diag.max() + 1.0))
        if B is None:
            return torch.linalg.solve(Hd, -g), None
        Dd = D * (1.0 + lam) + 1e-12 * (D.max() + 1.0)
        BD = B / Dd
        S = Hd - BD @ B.T
        rhs = -(g - BD @ gp)
        dc = torch.linalg.solve(S, rhs)
        dp = -(gp + B.T @ dc) / Dd
        return dc, dp

    def step(self, dc, dp):
        """Parameters after a step (dc over the free camera parameters, dp over the points)."""
        full = torch.zeros(self.F * 6 + 3, dtype=dc.dtype, device=dc.device)
        full[self.free_positions] = dc
        pose = full[:-3].reshape(self.F, 6)
        R = torch.tensor(so3_exp(pose[:, :3].cpu().numpy()), dtype=dc.dtype, device=dc.device) @ self.R
        c = self.c + pose[:, 3:]
        intr = self.intr + full[-3:]
        rho = self.rho if dp is None else self.rho + dp
        return R, c, intr, rho


def bundle_adjust(track: CameraTrack, corr: Correspondences, inverse_depth: np.ndarray | None = None,
                  options: BAOptions = BAOptions(), device: str = "cpu") -> BAResult:
    """Refine `track` (and the points' inverse depths) on `corr`. `inverse_depth` (N,) starts the points;
    None: triangulated from the track (see `triangulate_inverse_depth`); ignored for rotation_only."""
    with one_cpu_thread(device):  # see backend/device.py for why
        return _bundle_adjust(track, corr, inverse_depth, options, device)


def _bundle_adjust(track, corr, inverse_depth, options, device) -> BAResult:
    if options.rotation_only:
        track = track.copy(centre=np.zeros_like(track.centre))
        rho0 = np.zeros(corr.points)
    else:
        rho0 = triangulate_inverse_depth(track, corr) if inverse_depth is None else np.asarray(inverse_depth, np.float64)
    prob = _Problem(track, corr, rho0, options, device)
    scale_ref = torch.median(prob.rho[prob.rho > 0]) if prob.free_points and (prob.rho > 0).any() else None
    lam = 1e-4
    r, z, J = prob.evaluate(prob.R, prob.c, prob.intr, prob.rho, jacobian=True)
    cost, w = prob.cost(r, z)
    history = [float(cost)]
    for _ in range(options.iterations):
        system = prob.normal_equations(r, J, w)
        improved = False
        while lam < 1e8:
            dc, dp = prob.solve(*system, lam)
            R, c, intr, rho = prob.step(dc, dp)
            if scale_ref is not None and (rho > 0).any():
                s = torch.median(rho[rho > 0]) / scale_ref  # hold the scale: X -> s X
                c = c[options.anchor] + (c - c[options.anchor]) * s
                rho = rho / s
            r_new, z_new, _ = prob.evaluate(R, c, intr, rho, jacobian=False)
            new_cost, _ = prob.cost(r_new, z_new)
            if torch.isfinite(new_cost) and new_cost < cost:
                improved = True
                prob.R, prob.c, prob.intr, prob.rho = R, c, intr, rho
                lam = max(lam / 3.0, 1e-7)
                break
            lam *= 4.0
        if not improved:
            break
        relative = (cost - new_cost) / max(float(cost), 1e-12)
        r, z, J = prob.evaluate(prob.R, prob.c, prob.intr, prob.rho, jacobian=True)
        cost, w = prob.cost(r, z)
        history.append(float(cost))
        if relative < options.tolerance:
            break
    pp_std = _principal_point_std(prob, r, J, w) if options.refine_principal_point else None
    k = prob.intr.cpu().numpy()
    # A frame is solved once correspondences tie it to the others (an interpolated start is then refined).
    observed = np.zeros(track.frames, bool)
    observed[corr.frame] = observed[corr.ref_frame] = True
    out = track.copy(intrinsics=Intrinsics(float(k[0]), float(k[1]), float(k[2])),
                     rotation=prob.R.cpu().numpy(), centre=prob.c.cpu().numpy(), registered=track.registered | observed)
    residual = np.empty(corr.observations)
    residual[prob.order] = torch.linalg.norm(r, dim=-1).cpu().numpy()
    return BAResult(out, prob.rho.cpu().numpy(), residual, history, pp_std)


def _principal_point_std(prob: _Problem, r, J, w) -> float:
    """Marginal std (px) of the principal point from the Schur-reduced Gauss-Newton information matrix,
    scaled by the robust residual variance (largest of the two axes)."""
    H, g, B, D, gp = prob.normal_equations(r, J, w)
    S = H if B is None else H - (B / (D + 1e-12 * (D.max() + 1.0))) @ B.T
    cov = torch.linalg.pinv(S, hermitian=True, rtol=1e-10)
    sigma2 = float(((r**2).sum(-1) * w).sum() / max(2 * len(r) - prob.P, 1))
    return float(np.sqrt(sigma2 * cov[-2:, -2:].diagonal().max().item()))


def triangulate_inverse_depth(track: CameraTrack, corr: Correspondences) -> np.ndarray:
    """(N,) least-squares inverse depth of each point from its observations, given the cameras.

    With A = R_b^T R_a K^-1 u and B = R_b^T (c_a - c_b), the image in b is (A + rho B) up to scale, so each
    observation (x, y) (normalised) gives two equations linear in rho: rho (x B_z - B_x) = A_x - x A_z, and
    likewise in y. Points with no parallax get rho = 0 (at infinity); negative solutions are clipped to 0.
    """
    Kinv = np.linalg.inv(track.intrinsics.K)
    a = corr.ref_frame[corr.point]
    b = corr.frame
    ray = np.c_[corr.ref_xy, np.ones(corr.points)] @ Kinv.T
    Rb_T = track.rotation[b].transpose(0, 2, 1)
    A = np.einsum("mij,mjk,mk->mi", Rb_T, track.rotation[a], ray[corr.point])
    B = np.einsum("mij,mj->mi", Rb_T, track.centre[a] - track.centre[b])
    n = np.c_[corr.xy, np.ones(len(b))] @ Kinv.T
    k = np.stack([n[:, 0] * B[:, 2] - B[:, 0], n[:, 1] * B[:, 2] - B[:, 1]], -1)
    m = np.stack([A[:, 0] - n[:, 0] * A[:, 2], A[:, 1] - n[:, 1] * A[:, 2]], -1)
    num = np.bincount(corr.point, (k * m).sum(-1), minlength=corr.points)
    den = np.bincount(corr.point, (k * k).sum(-1), minlength=corr.points)
    rho = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)
    return np.maximum(rho, 0.0)
