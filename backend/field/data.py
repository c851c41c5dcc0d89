"""What training reads from the job, moved to the device once, and random ray batches drawn from it.

Inputs: frames/ (colour), camera/cameras.json (K, world_from_camera), depth/NNNNN.exr (the depth prior;
0 or inf = unknown), masks/motion/NNNNN.png (the solve's motion masks: they start the static/dynamic split
and get a share of every batch, so small moving objects are not starved), and the flow stage's gap-1
forward/backward flow with its forward-backward check (the induced-flow prior, only where it passed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr

from ..errors import ShotfieldError
from ..flow_store import FlowStore
from ..frames import load_frames


@dataclass
class ShotData:
    rgb: torch.Tensor          # (F, H, W, 3) float 0..1
    depth: torch.Tensor        # (F, H, W) planar depth, 0 where unknown
    moving: torch.Tensor       # (F, H, W) bool
    flow_fw: torch.Tensor      # (F, H, W, 2) pixels to frame t+1 (zeros on the last frame)
    valid_fw: torch.Tensor     # (F, H, W) bool
    flow_bw: torch.Tensor      # (F, H, W, 2) pixels to frame t-1 (zeros on the first frame)
    valid_bw: torch.Tensor     # (F, H, W) bool
    K: torch.Tensor            # (F, 3, 3)
    world_from_camera: torch.Tensor  # (F, 4, 4)
    inside_px: torch.Tensor | None = None  # (F, H, W) how far inside its motion mask a pixel is (px; 0 outside)
    rigid_fw: torch.Tensor | None = None   # (F, H, W, 3) scene flow to t+1 of the masked pixels' rigid parts
    rigid_ok_fw: torch.Tensor | None = None  # (F, H, W) bool: where there is one (scene_flow_prior.rigid_scene_flow)
    rigid_bw: torch.Tensor | None = None   # (F, H, W, 3) ... to t-1
    rigid_ok_bw: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return self.rgb.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(W, H)"""
        return self.rgb.shape[2], self.rgb.shape[1]


def read_depth_prior(job_dir: Path, frames: int) -> np.ndarray:
    """(F, H, W) float32 planar depth, 0 where unknown; ShotfieldError if the depth stage left no files."""
    out = []
    for i in range(frames):
        path = job_dir / "depth" / f"{i:05d}.exr"
        if not path.is_file():
            raise ShotfieldError(f"{path}: depth missing; run the 'depth' stage again")
        d = read_depth_exr(path).astype(np.float32)
        out.append(np.where(np.isfinite(d) & (d > 0), d, 0.0))
    return np.stack(out)


def read_motion_masks(job_dir: Path, frames: int, height: int, width: int) -> np.ndarray:
    """(F, H, W) bool; all False where the solve wrote none (the field then splits on its own)."""
    out = np.zeros((frames, height, width), bool)
    for i in range(frames):
        mask = cv2.imread(str(job_dir / "masks" / "motion" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        if mask is not None and mask.shape == (height, width):
            out[i] = mask > 127
    return out


def load_shot(job_dir: Path, device: str) -> ShotData:
    rgb = load_frames(job_dir)
    frames, height, width = rgb.shape[:3]
    cameras = read_cameras(job_dir / "camera" / "cameras.json")
    if len(cameras.frames) != frames or (cameras.width, cameras.height) != (width, height):
        raise ShotfieldError(f"{job_dir / 'camera' / 'cameras.json'}: {len(cameras.frames)} cameras of "
                             f"{cameras.width}x{cameras.height} for {frames} frames of {width}x{height}; run 'solve' again")
    depth = read_depth_prior(job_dir, frames)
    moving = read_motion_masks(job_dir, frames, height, width)
    store = FlowStore(job_dir)
    if 1 not in store.gaps:
        raise ShotfieldError(f"{job_dir / 'flow'}: no gap-1 flow; run the 'flow' stage again")
    flow_fw = np.zeros((frames, height, width, 2), np.float32)
    flow_bw = np.zeros_like(flow_fw)
    valid_fw = np.zeros((frames, height, width), bool)
    valid_bw = np.zeros_like(valid_fw)
    for t in range(frames - 1):
        flow_fw[t], valid_fw[t] = store.forward(t, 1), store.forward_valid(t, 1)
        flow_bw[t + 1], valid_bw[t + 1] = store.backward(t, 1), store.backward_valid(t, 1)

    def put(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    # the distance to the nearest pixel outside the mask: the optical flow near a mover's outline mixes its
    # motion with the background's (the scene-flow prior trusts it less there)
    inside = np.stack([cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3) for m in moving])
    return ShotData(put(rgb.astype(np.float32) / 255.0), put(depth), put(moving, torch.bool), put(flow_fw),
                    put(valid_fw, torch.bool), put(flow_bw), put(valid_bw, torch.bool),
                    put(cameras.K), put(cameras.world_from_camera), put(inside))


@dataclass
class RayBatch:
    frame: torch.Tensor        # (B,) long
    xy: torch.Tensor           # (B, 2) pixel centres
    rgb: torch.Tensor          # (B, 3)
    depth: torch.Tensor        # (B,) 0 = unknown
    moving: torch.Tensor       # (B,) bool
    flow_fw: torch.Tensor      # (B, 2)
    valid_fw: torch.Tensor     # (B,) bool
    flow_bw: torch.Tensor
    valid_bw: torch.Tensor
    inside_px: torch.Tensor | None = None   # (B,) see ShotData
    rigid_fw: torch.Tensor | None = None    # (B, 3) and the others: see ShotData (None when it has none)
    rigid_ok_fw: torch.Tensor | None = None
    rigid_bw: torch.Tensor | None = None
    rigid_ok_bw: torch.Tensor | None = None


class RaySampler:
    """Uniform pixels over all frames, plus `moving_share` of each batch from motion-masked pixels, which
    come first in the batch (the losses give the warps to a leading part of it)."""

    def __init__(self, data: ShotData, moving_share: float, seed: int = 0):
        self.data = data
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        flat = data.moving.reshape(-1).nonzero().squeeze(1).cpu()
        self.moving_index = flat if len(flat) else None
        self.moving_share = moving_share if len(flat) else 0.0

    def sample(self, count: int) -> RayBatch:
        d = self.data
        total = d.rgb.shape[0] * d.rgb.shape[1] * d.rgb.shape[2]
        n_moving = int(count * self.moving_share)
        index = torch.randint(0, total, (count - n_moving,), generator=self.generator)
        if n_moving:
            pick = torch.randint(0, len(self.moving_index), (n_moving,), generator=self.generator)
            index = torch.cat([self.moving_index[pick], index])
        index = index.to(d.rgb.device)
        w, h = d.size
        frame, pixel = index // (w * h), index % (w * h)
        py, px = pixel // w, pixel % w
        xy = torch.stack([px, py], -1).float() + 0.5
        at = (frame, py, px)
        rigid = [a[at] if a is not None else None for a in (d.rigid_fw, d.rigid_ok_fw, d.rigid_bw, d.rigid_ok_bw)]
        return RayBatch(frame, xy, d.rgb[at], d.depth[at], d.moving[at], d.flow_fw[at], d.valid_fw[at],
                        d.flow_bw[at], d.valid_bw[at], d.inside_px[at] if d.inside_px is not None else None, *rigid)
