"""The training correspondences: pixel p of frame i and where the flow says it is in frame j, for every frame
gap the flow stage computed (both directions), plus longer gaps chained from them, kept only where the flow
passes the forward-backward check; and hard-example mining over them.

Long gaps are what keep a track from drifting (chained gap-1 flow accumulates error frame by frame): a gap the
flow store lacks (e.g. 24 or 32 on a 40-frame shot) is composed from stored ones, largest first
(f_a+b(p) = f_a(p) + f_b(p + f_a(p)), valid where both parts are).

Stored gaps above DIRECT_GAP are checked against the flow chained from shorter ones and replaced by the chain
where the two disagree (prefer_agreeing); on the motion masks every stored gap above the shortest is.

Hard mining (OmniMotion sec. 4.3): the flow error of every sampled correspondence is remembered per pair on a
coarse grid of cells; half of each batch is drawn in proportion to that error, half uniformly.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..flow_store import SCALE, encode

CELL = 4  # pixels per side of a hard-mining cell
MOVING_PRIOR = 20.0  # starting error (px) of a cell the motion masks cover
DIRECT_GAP = 2       # stored gaps up to this one are used as they are; longer ones are checked against chains
# ... except on the motion masks (masks/motion), where every stored gap but the shortest is checked too:
# direct gap-2 DIS flow on a rolling object is as wrong as the long gaps are. Measured (in-process, preview):
# quick shot AJ 0.550 -> 0.588, AJ moving 0.214 -> 0.270 (OA 0.862 -> 0.824); default shot AJ 0.601 -> 0.607,
# AJ moving 0.274 -> 0.290, OA 0.830 -> 0.832. Checking gap 2 everywhere moved the static scene too
# (median error 0.13 -> 0.21 px on the quick shot); on the masks only it stays at 0.17 px.
CHECK_MOVING = True
AGREE_PX, AGREE_SHARE = 1.0, 0.05   # direct and chained flow agree within AGREE_PX + AGREE_SHARE * |flow|


class Correspondences:
    def __init__(self, store, frames_rgb: np.ndarray, max_chained_gap: int | None = None, seed: int = 0,
                 moving: np.ndarray | None = None):
        self.F, self.H, self.W = store.frames, store.height, store.width
        stored = sorted(g for g in store.gaps if g < self.F)
        if not stored:
            raise ValueError("the flow store has no frame gap shorter than the shot")
        limit = min(max_chained_gap or self.F - 1, self.F - 1)
        chained, g = [], stored[-1] * 2
        while g <= limit:          # doubling the longest stored gap, then the whole shot
            chained.append(g)
            g *= 2
        if limit > max(stored + chained):
            chained.append(limit)
        self.gaps = stored + chained
        self.moving = moving
        flows, valids, src, dst = [], [], [], []
        cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

        def pair(t0: int, t1: int):
            """(flow (H,W,2) float32 from t0 to t1, valid (H,W) bool), stored or chained."""
            key = (t0, t1)
            if key in cache:
                return cache[key]
            gap = abs(t1 - t0)
            direct = None
            if gap in stored:
                if t1 > t0:
                    direct = store.forward(t0, gap), store.forward_valid(t0, gap)
                else:
                    direct = store.backward(t1, gap), store.backward_valid(t1, gap)
            suspect = self.moving is not None and CHECK_MOVING and self.moving[t0].any()
            if direct is not None and (gap == stored[0] or (gap <= DIRECT_GAP and not suspect)):
                out = direct
            else:
                step = max(s for s in stored if s < gap)
                mid = t0 + step if t1 > t0 else t0 - step
                f1, v1 = pair(t0, mid)
                f2, v2 = pair(mid, t1)
                out = compose(f1, v1, f2, v2)
                if direct is not None:
                    out = prefer_agreeing(direct, out, None if gap > DIRECT_GAP else self.moving[t0])
            cache[key] = out
            return out

        for gap in self.gaps:
            for t in range(self.F - gap):
                for a, b in ((t, t + gap), (t + gap, t)):
                    f, v = pair(a, b)
                    flows.append(encode(f))
                    valids.append(v)
                    src.append(a)
                    dst.append(b)
        cache.clear()
        self.flow = torch.from_numpy(np.stack(flows))                 # (P, H, W, 2) int16 fixed point
        self.valid = torch.from_numpy(np.stack(valids))               # (P, H, W) bool
        self.src = torch.tensor(src)
        self.dst = torch.tensor(dst)
        self.rgb = torch.from_numpy(frames_rgb).float() / 255.0       # (F, H, W, 3)
        self.ch, self.cw = -(-self.H // CELL), -(-self.W // CELL)
        # Mined flow error per pair and cell. Before a cell has been drawn its error is unknown: cells the
        # motion masks mark (masks/motion, where the solve wrote them) start as hard, since the cameras
        # alone explain everything else at the start.
        self.error = torch.ones(len(src), self.ch * self.cw)
        if moving is not None:
            pad = np.zeros((self.F, self.ch * CELL, self.cw * CELL), np.float32)
            pad[:, :self.H, :self.W] = moving
            share = pad.reshape(self.F, self.ch, CELL, self.cw, CELL).mean(axis=(2, 4)).reshape(self.F, -1)
            self.error += MOVING_PRIOR * torch.from_numpy(share)[self.src]
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def pairs(self) -> int:
        return len(self.src)

    def sample(self, batch: int) -> dict:
        """A batch: src/dst frames, source pixel centres, target pixels, valid, colours; pair/cell for `record`."""
        half = batch // 2
        g = self.generator
        pair_u = torch.randint(0, self.pairs, (batch - half,), generator=g)
        y_u = torch.randint(0, self.H, (batch - half,), generator=g)
        x_u = torch.randint(0, self.W, (batch - half,), generator=g)
        flat = torch.multinomial(self.error.flatten(), half, replacement=True, generator=g)
        pair_h = flat // (self.ch * self.cw)
        cell = flat % (self.ch * self.cw)
        y_h = ((cell // self.cw) * CELL + torch.randint(0, CELL, (half,), generator=g)).clamp_max(self.H - 1)
        x_h = ((cell % self.cw) * CELL + torch.randint(0, CELL, (half,), generator=g)).clamp_max(self.W - 1)
        p, y, x = torch.cat([pair_u, pair_h]), torch.cat([y_u, y_h]), torch.cat([x_u, x_h])
        flow = self.flow[p, y, x].float() / SCALE
        pixels = torch.stack([x, y], dim=1).float() + 0.5
        src = self.src[p]
        return {"pair": p, "cell": (y // CELL) * self.cw + x // CELL, "src": src, "dst": self.dst[p],
                "pixels": pixels, "target": pixels + flow, "valid": self.valid[p, y, x],
                "rgb": self.rgb[src, y, x]}

    def record(self, batch: dict, error: torch.Tensor) -> None:
        """Remember the flow error (pixels) of a batch for mining; a floor keeps every cell drawable."""
        e = error.detach().cpu().clamp_min(0.05)
        e = torch.where(batch["valid"], e, torch.full_like(e, 0.05))
        self.error[batch["pair"], batch["cell"]] = e


def prefer_agreeing(direct, chained, where=None):
    """Long-gap flow checked against the flow chained from shorter gaps: the direct flow where both are valid
    and agree, else the chained flow (valid where it is). Direct DIS flow over 8-16 frames passes the
    forward-backward check on moving objects while being wrong both ways (it matches them to the background:
    measured on the quick test shot against the ground truth, gap 8: 58 % of the valid moving pixels more
    than 3 px off, gap 16: 100 %; chained: 17 % and 28 %), and that taught the model to pin moving objects to
    the background.

    `where` (H, W) bool, optional: check only there (the motion masks); elsewhere the direct flow and its
    validity stand."""
    fd, vd = direct
    fc, vc = chained
    tolerance = AGREE_PX + AGREE_SHARE * np.linalg.norm(fc, axis=-1)
    agree = vd & vc & (np.linalg.norm(fd - fc, axis=-1) < tolerance)
    if where is None:
        return np.where(agree[..., None], fd, fc).astype(np.float32), vc
    keep = agree | ~where      # outside `where` the direct flow stands as it is
    return np.where(keep[..., None], fd, fc).astype(np.float32), np.where(where, vc, vd)


def compose(f1: np.ndarray, v1: np.ndarray, f2: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chain flow a->b (f1, v1) with b->c (f2, v2): a->c, valid where both links are and land in the frame."""
    h, w = v1.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + f1[..., 0], ys + f1[..., 1]
    f2_at = cv2.remap(f2, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    v2_at = cv2.remap(v2.astype(np.uint8), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (f1 + f2_at).astype(np.float32), v1 & (v2_at > 0) & inside
