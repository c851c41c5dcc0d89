"""layers.json: written, read back, and refused with a plain message when malformed."""
import json

import numpy as np
import pytest

from exporters.layers_json import (LayerEntry, LayerReference, LayersFile, LayersFileError, layers_to_dict,
                                   read_layer_mesh, read_layers_json, write_layers_json)


def _doc(kind="mpi") -> LayersFile:
    K = np.array([[100.0, 0, 40], [0, 100, 30], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, 3] = [1, 2, 3]
    layers = [LayerEntry("ref00003/layer_00.png", "ref00003/layer_00.npz", 9.0, 7.0, 10.0, 12),
              LayerEntry("ref00003/layer_01.png", "ref00003/layer_01.npz", 3.0, 2.0, 7.0, 4)]
    return LayersFile(kind, 80, 60, [LayerReference(3, K, pose, layers, 24, {"reference_psnr_db": 50.0}, margin=10)])


@pytest.mark.parametrize("kind, key", [("mpi", "depth"), ("msi", "radius")])
def test_round_trip(tmp_path, kind, key):
    write_layers_json(tmp_path / "layers.json", _doc(kind))
    raw = json.loads((tmp_path / "layers.json").read_text())
    assert raw["format"] == "shotfield-layers" and raw["references"][0]["layers"][0][key] == 9.0
    back = read_layers_json(tmp_path / "layers.json")
    assert back.kind == kind and back.folder == tmp_path
    ref = back.references[0]
    assert ref.frame == 3 and ref.planes == 24 and ref.extra == {"reference_psnr_db": 50.0}
    assert np.allclose(ref.world_from_camera[:3, 3], [1, 2, 3])
    assert [e.distance for e in ref.layers] == [9.0, 3.0]
    assert back.path(ref.layers[0].image) == tmp_path / "ref00003/layer_00.png"
    # The canvas margin: the texture's intrinsics are the camera's with the principal point moved by it.
    assert raw["references"][0]["margin"] == 10 and ref.margin == 10
    assert np.allclose(ref.texture_K, [[100, 0, 50], [0, 100, 40], [0, 0, 1]]) and ref.K[0, 2] == 40


def test_files_without_a_margin_read_as_the_frame_itself(tmp_path):
    data = layers_to_dict(_doc())
    del data["references"][0]["margin"]
    (tmp_path / "layers.json").write_text(json.dumps(data))
    ref = read_layers_json(tmp_path / "layers.json").references[0]
    assert ref.margin == 0 and np.allclose(ref.texture_K, ref.K)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other"), "not a Shotfield layers file"),
    (lambda d: d.update(kind="cube"), "kind"),
    (lambda d: d["references"][0].update(K=[[1, 2], [3, 4]]), "K must be 3x3"),
    (lambda d: d["references"][0].update(layers=[]), "has no layers"),
    (lambda d: d["references"][0]["layers"][0].pop("depth"), "malformed"),
    (lambda d: d.update(references=[]), "no reference frames"),
    (lambda d: d["references"][0].update(margin=-2), "margin -2 is negative"),
])
def test_malformed_files_are_refused(tmp_path, change, message):
    data = layers_to_dict(_doc())
    change(data)
    (tmp_path / "layers.json").write_text(json.dumps(data))
    with pytest.raises(LayersFileError, match=message):
        read_layers_json(tmp_path / "layers.json")


def test_missing_file_names_the_stage(tmp_path):
    with pytest.raises(LayersFileError, match="run the 'layers' stage"):
        read_layers_json(tmp_path / "layers.json")


def test_mesh_file_is_checked(tmp_path):
    np.savez(tmp_path / "m.npz", vertices=np.zeros((6, 3), np.float32), uv=np.zeros((6, 2), np.float32),
             faces=np.array([[0, 1, 9]], np.int32), grid=np.array([2, 3], np.int32))
    with pytest.raises(LayersFileError, match="out of range"):
        read_layer_mesh(tmp_path / "m.npz")
