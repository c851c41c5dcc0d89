"""Writing the layers folder: RGBA PNGs, mesh .npz files, layers.json and layers.glb, filled under a
temporary name and swapped in whole (exporters/atomic.py), so a cancel never leaves a half folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from exporters.atomic import swap_in_folder
from exporters.layers_gltf import write_layers_glb
from exporters.layers_json import LayerEntry, LayerReference, LayersFile, write_layers_json

from .build import BuiltReference, typical_distance


def write_layers_folder(folder: Path, built: list[BuiltReference], K: dict[int, np.ndarray], poses: dict[int, np.ndarray],
                        width: int, height: int, extra: dict[int, dict]) -> LayersFile:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    references = []
    for ref in built:
        sub = f"ref{ref.frame:05d}"
        (partial / sub).mkdir()
        entries = []
        for n, (layer, m) in enumerate(zip(ref.layers, ref.meshes)):
            image, mesh_file = f"{sub}/layer_{n:02d}.png", f"{sub}/layer_{n:02d}.npz"
            Image.fromarray(layer.rgba, "RGBA").save(partial / image)
            np.savez_compressed(partial / mesh_file, **m.as_npz())
            entries.append(LayerEntry(image, mesh_file, round(typical_distance(layer), 6), round(layer.near, 6),
                                      round(layer.far, 6), int(len(m.faces))))
        references.append(LayerReference(ref.frame, K[ref.frame], poses[ref.frame], entries, ref.planes,
                                         {"reference_psnr_db": ref.reference_psnr_db, **extra.get(ref.frame, {})},
                                         ref.margin))
    doc = LayersFile(built[0].kind, width, height, references, "layers.glb", partial)
    write_layers_glb(partial / "layers.glb", doc)
    write_layers_json(partial / "layers.json", doc)
    swap_in_folder(partial, folder)
    doc.folder = folder
    return doc
