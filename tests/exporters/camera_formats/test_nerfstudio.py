"""nerfstudio transforms.json: exact round trip; rays built with nerfstudio's own camera model (its
dataparser and Cameras._generate_rays_from_coords, transcribed below) pass through the world points
Shotfield's cameras see; a transform_matrix without the y/z flip would not."""
import json

import numpy as np

from exporters.camera_formats import nerfstudio
from exporters.conventions import project_points

from .conftest import assert_cameras_match, make_cameras, points_in_front


def test_round_trip_per_frame_intrinsics(tmp_path, moving_cameras):
    path = nerfstudio.write_transforms(tmp_path / "transforms.json", moving_cameras)
    data = json.loads(path.read_text())
    assert data["camera_model"] == "OPENCV" and (data["w"], data["h"]) == (640, 360)
    assert all(data[k] == 0.0 for k in ("k1", "k2", "p1", "p2"))
    assert "fl_x" not in data  # the focal length varies: per frame
    assert all({"fl_x", "fl_y", "cx", "cy"} <= set(fr) for fr in data["frames"])
    assert data["frames"][3]["file_path"] == "frames/00003.png"
    assert_cameras_match(nerfstudio.read_transforms(path), moving_cameras, rtol=1e-12)


def test_round_trip_shared_intrinsics(tmp_path):
    still = make_cameras(frames=4, zoom=False, drift=False)
    path = nerfstudio.write_transforms(tmp_path / "transforms.json", still, image_dir="../../frames")
    data = json.loads(path.read_text())
    assert (data["fl_x"], data["cx"], data["cy"]) == (380.0, 347.25, 161.75)
    assert not any("fl_x" in fr for fr in data["frames"])
    assert data["frames"][0]["file_path"] == "../../frames/00000.png"
    assert_cameras_match(nerfstudio.read_transforms(path), still, rtol=1e-12)


def nerfstudio_ray(frame: dict, meta: dict, xy):
    """nerfstudio's pinhole ray through image point `xy` (pixel-corner coordinates): direction in the
    camera [(x - cx) / fx, -(y - cy) / fy, -1], rotated by transform_matrix[:3, :3]; origin its [:3, 3]."""
    c2w = np.array(frame["transform_matrix"])
    fx, fy, cx, cy = (frame.get(k, meta.get(k)) for k in ("fl_x", "fl_y", "cx", "cy"))
    d = np.array([(xy[0] - cx) / fx, -(xy[1] - cy) / fy, -1.0])
    return c2w[:3, 3], c2w[:3, :3] @ d


def ray_misses(meta, cameras, points):
    """Per frame, the largest distance (world units) from a world point to nerfstudio's ray of its pixel."""
    out = []
    for fr, f, X in zip(meta["frames"], cameras.frames, points):
        xy, _ = project_points(f.K, f.world_from_camera, X)
        worst = 0.0
        for p, pix in zip(X, xy):
            o, d = nerfstudio_ray(fr, meta, pix)
            s = (p - o) @ d / (d @ d)
            worst = max(worst, np.inf if s <= 0 else float(np.linalg.norm(o + s * d - p)))
        out.append(worst)
    return np.array(out)


def test_nerfstudio_rays_hit_the_points(moving_cameras):
    meta = nerfstudio.transforms_dict(moving_cameras)
    points = points_in_front(moving_cameras)
    assert ray_misses(meta, moving_cameras, points).max() < 1e-9
    # Counter-example: the OpenCV pose written unflipped puts every point off its ray (or behind it).
    for fr, f in zip(meta["frames"], moving_cameras.frames):
        fr["transform_matrix"] = f.world_from_camera.tolist()
    assert ray_misses(meta, moving_cameras, points).min() > 0.1
