"""layers.glb: one node per reference camera (its pose in glTF's Y-up world), one alpha-blended, unlit,
textured mesh per layer under it; read back with trimesh and checked against the input numbers."""
import json
import struct

import numpy as np
import trimesh
from PIL import Image

from exporters.layers_gltf import GLTF_FROM_WORLD, write_layers_glb
from exporters.layers_json import LayerEntry, LayerReference, LayersFile


def _layers(tmp_path) -> LayersFile:
    (tmp_path / "ref00002").mkdir()
    K = np.array([[50.0, 0, 16], [0, 50, 12], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]     # OpenCV camera looking along world +Y, Z up
    pose[:3, 3] = [0.5, -4.0, 1.5]
    entries = []
    for n, z in enumerate((6.0, 2.0)):
        rgba = np.zeros((24, 32, 4), np.uint8)
        rgba[..., n] = 200
        rgba[..., 3] = 255 if n == 0 else 0
        rgba[4:12, 6:20, 3] = 255
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"ref00002/layer_{n:02d}.png")
        xs, ys = np.meshgrid(np.linspace(0, 32, 3), np.linspace(0, 24, 3))
        rays = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
        faces = np.array([[0, 3, 4], [0, 4, 1], [1, 4, 5], [1, 5, 2], [3, 6, 7], [3, 7, 4], [4, 7, 8], [4, 8, 5]], np.int32)
        np.savez(tmp_path / f"ref00002/layer_{n:02d}.npz", vertices=(rays * z).astype(np.float32),
                 uv=np.stack([xs / 32, ys / 24], -1).reshape(-1, 2).astype(np.float32), faces=faces,
                 grid=np.array([3, 3], np.int32))
        entries.append(LayerEntry(f"ref00002/layer_{n:02d}.png", f"ref00002/layer_{n:02d}.npz", z, z, z, len(faces)))
    return LayersFile("mpi", 32, 24, [LayerReference(2, K, pose, entries, 8)], "layers.glb", tmp_path)


def _gltf_json(path) -> dict:
    data = path.read_bytes()
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20:20 + length])


def test_glb_holds_the_layers_under_the_reference_camera(tmp_path):
    doc = _layers(tmp_path)
    write_layers_glb(tmp_path / "layers.glb", doc)
    tree = _gltf_json(tmp_path / "layers.glb")
    assert "KHR_materials_unlit" in tree["extensionsUsed"]
    assert all(m["alphaMode"] == "BLEND" and m["doubleSided"] and "KHR_materials_unlit" in m["extensions"]
               for m in tree["materials"])
    names = {n.get("name") for n in tree["nodes"]}
    assert {"reference 00002", "reference 00002 layer 00", "reference 00002 layer 01"} <= names

    scene = trimesh.load(tmp_path / "layers.glb", force="scene")
    ref = doc.references[0]
    for n, entry in enumerate(ref.layers):
        node = f"reference 00002 layer {n:02d}"
        transform, geometry_name = scene.graph[node]
        mesh = scene.geometry[geometry_name]
        local = np.load(tmp_path / entry.mesh)["vertices"].astype(np.float64)
        expected = trimesh.transform_points(local, GLTF_FROM_WORLD @ ref.world_from_camera)
        assert np.allclose(trimesh.transform_points(mesh.vertices, transform), expected, atol=1e-5)
        # World positions: in front of the camera (world +Y) at the layer's depth; glTF's Y-up is world Z-up.
        world = trimesh.transform_points(expected, np.linalg.inv(GLTF_FROM_WORLD))
        assert np.allclose(world[:, 1], -4.0 + entry.distance, atol=1e-5)
        # The texture came along, with its alpha, and the uv's top-left origin maps to the image's top-left.
        image = np.asarray(mesh.visual.material.baseColorTexture.convert("RGBA"))
        assert image.shape == (24, 32, 4) and image[0, 0, n] == 200
        assert np.allclose(mesh.visual.uv[np.argmin(local[:, 0] + local[:, 1])], [0, 1])
