"""The `layers` stage on the test shot with ground-truth cameras, depth and motion masks, and
`shotfield render --source layers` of its output: the reference camera sees the reference frame, the depth
is the scene's, and a held-out camera near the reference frame sees more than a single projected card or the
depth-warped frame does."""
import json

import numpy as np
import pytest
from PIL import Image

from backend.layers.build import RECIPES
from backend.metrics.image import psnr
from backend.stages import registered_stages
from exporters.cameras_json import CameraFrame, Cameras, read_cameras, write_cameras
from exporters.exr import read_depth_exr
from exporters.layers_json import read_layer_mesh, read_layers_json
from scripts.benchmarks.layers import card_view, depth_warp_view
from tests.conftest import copy_job, run_stages

from .jobs import layers_job


@pytest.fixture(scope="module")
def job(test_shot, ground_truth_pipeline):
    return layers_job(test_shot, ground_truth_pipeline)


def test_layers_json_files_and_reference_view(job, test_shot):
    doc = read_layers_json(job / "layers" / "layers.json")
    assert doc.kind == "mpi" and (doc.width, doc.height) == test_shot.size
    (ref,) = doc.references
    assert ref.frame == test_shot.frame_count // 2
    assert np.allclose(ref.world_from_camera, test_shot.cameras().frames[ref.frame].world_from_camera)
    assert 4 <= len(ref.layers) <= RECIPES["preview"].layers
    distances = [e.distance for e in ref.layers]
    assert distances == sorted(distances, reverse=True)              # back to front
    m = ref.margin
    assert m == 20                                                   # the canvas: 1/8 of 160 on every side
    for entry in ref.layers:
        rgba = np.asarray(Image.open(doc.path(entry.image)))
        assert rgba.shape == (120 + 2 * m, 160 + 2 * m, 4)
        mesh = read_layer_mesh(doc.path(entry.mesh))
        assert len(mesh["faces"]) == entry.triangles
        assert entry.near * 0.999 <= np.median(mesh["vertices"][:, 2]) <= entry.far * 1.001
    # The backdrop is opaque; the nearer layers are mostly empty (their quads trimmed).
    assert np.asarray(Image.open(doc.path(ref.layers[0].image)))[..., 3].min() == 255
    assert sum(e.triangles for e in ref.layers[1:]) < 0.95 * 2 * (len(ref.layers) - 1) * 51 * 41
    assert ref.extra["reference_psnr_db"] >= 40
    assert (job / "layers" / "layers.glb").stat().st_size > 10_000


def test_render_command_at_reference_and_held_out_cameras(job, test_shot, tmp_path):
    from tests.backend.conftest import shotfield

    doc = read_layers_json(job / "layers" / "layers.json")
    r = doc.references[0].frame
    held = test_shot.cameras("gt/heldout")
    near = min(range(len(held.frames)), key=lambda n: abs(held.frames[n].time - r))
    assert abs(held.frames[near].time - r) <= 3
    gt = test_shot.cameras()
    cameras = Cameras(160, 120, [CameraFrame(0, gt.frames[r].K, gt.frames[r].world_from_camera, float(r)),
                                 CameraFrame(1, held.frames[near].K, held.frames[near].world_from_camera, float(r))])
    write_cameras(tmp_path / "cams.json", cameras)
    done = shotfield("render", job, "--cameras", tmp_path / "cams.json", "--out", tmp_path / "out", "--source", "layers")
    assert done.returncode == 0, done.stderr

    frame = test_shot.frame(r) / 255.0
    rendered = np.asarray(Image.open(tmp_path / "out" / "00000.png").convert("RGB")) / 255.0
    assert psnr(rendered, frame) >= 40
    depth = read_depth_exr(tmp_path / "out" / "00000.depth.exr")
    true = test_shot.depth(r)
    static = (test_shot.object_index(r) == 0) & np.isfinite(true)
    assert np.median(np.abs(depth[static] - true[static]) / true[static]) < 0.05

    view = np.asarray(Image.open(tmp_path / "out" / "00001.png").convert("RGB")) / 255.0
    truth = test_shot.frame(near, "gt/heldout/frames") / 255.0
    args = (test_shot.frame(r), test_shot.depth(r), gt.frames[r].K, gt.frames[r].world_from_camera,
            held.frames[near].K, held.frames[near].world_from_camera, 160, 120)
    card, warp = card_view(*args) / 255.0, depth_warp_view(*args) / 255.0
    # What the layers add over the depth pass alone: the background behind the foreground and past the frame.
    assert psnr(view, truth) >= psnr(card, truth) + 3, (psnr(view, truth), psnr(card, truth))
    assert psnr(view, truth) >= psnr(warp, truth) + 1, (psnr(view, truth), psnr(warp, truth))


def test_render_without_layers_says_which_stage_to_run(ground_truth_pipeline, tmp_path):
    from tests.backend.conftest import shotfield

    write_cameras(tmp_path / "cams.json", read_cameras(ground_truth_pipeline / "camera" / "cameras.json"))
    done = shotfield("render", ground_truth_pipeline, "--cameras", tmp_path / "cams.json", "--out", tmp_path / "o",
                     "--source", "layers")
    assert done.returncode == 1 and "layers" in done.stderr


@pytest.mark.skipif("depth" not in registered_stages(), reason="the depth stage is not built yet (issue: depth); "
                    "the layers run on ground-truth depth in the other tests")
def test_layers_through_the_real_chain(pipeline_job):
    job = pipeline_job("depth", "layers")
    doc = read_layers_json(job / "layers" / "layers.json")
    assert doc.references[0].extra["reference_psnr_db"] >= 35
    status = json.loads((job / "job.json").read_text())["stages"]["layers"]["status"]
    assert status == "done"


def test_msi_and_several_reference_frames(test_shot, ground_truth_pipeline, tmp_path):
    job = copy_job(ground_truth_pipeline, tmp_path / "job")
    run_stages(test_shot, job, ["layers"], effort=0.05, extra=("--layer-kind", "msi", "--layer-reference", "6,17"))
    doc = read_layers_json(job / "layers" / "layers.json")
    assert doc.kind == "msi" and [r.frame for r in doc.references] == [6, 17]
    for ref in doc.references:
        mesh = read_layer_mesh(doc.path(ref.layers[0].mesh))
        radius = np.linalg.norm(mesh["vertices"], axis=1)
        assert ref.layers[0].near * 0.999 <= radius.min() and radius.max() <= ref.layers[0].far * 1.001
        assert ref.extra["reference_psnr_db"] >= 35
