"""PLY point files (`camera/points.ply`): the vertex element as numpy arrays. numpy + standard library only,
so the add-on reads them with the same code the backend writes them with.

`write_points` writes binary little-endian float32 x, y, z + uchar red, green, blue, atomically.
The reader takes what the backend writes (binary little-endian float32 x, y, z + uchar red, green, blue) and the other
PLY flavours a user may drop into a job folder (ASCII, big-endian, double coordinates, extra properties,
other elements after the vertices). List properties (faces) are skipped only when they come after the
vertex element; a point file has none.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import write_bytes

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


class PlyError(ValueError):
    """The file is not a PLY this reader understands; the message names the file and the problem."""


def read_vertices(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{property name: (N,) array} of the vertex element, in the file's dtypes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlyError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = None, []  # elements: [name, count, [(prop, dtype)]]
    for line in header[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            elements.append([words[1], int(words[2]), []])
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1][2].append((words[-1], None))
            elif words[1] in _TYPES and len(words) == 3:
                elements[-1][2].append((words[2], _TYPES[words[1]]))
            else:
                raise PlyError(f"{path}: unknown property type in {line.strip()!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise PlyError(f"{path}: unknown PLY format {fmt!r}")
    vertex_at = next((i for i, e in enumerate(elements) if e[0] == "vertex"), None)
    if vertex_at is None:
        raise PlyError(f"{path}: no vertex element")
    if any(dtype is None for e in elements[:vertex_at + 1] for _, dtype in e[2]):
        raise PlyError(f"{path}: list properties before or in the vertex element are not supported")
    name, count, props = elements[vertex_at]
    if fmt == "ascii":
        lines = data[body_start:].decode("ascii", errors="replace").splitlines()
        skip = sum(e[1] for e in elements[:vertex_at])
        rows = [line.split() for line in lines[skip:skip + count]]
        if len(rows) < count or any(len(r) < len(props) for r in rows):
            raise PlyError(f"{path}: ends before its {count} vertices")
        table = np.array(rows, dtype=np.float64).reshape(count, -1) if count else np.zeros((0, len(props)))
        return {p: table[:, k].astype(dtype) for k, (p, dtype) in enumerate(props)}
    order = "<" if fmt == "binary_little_endian" else ">"
    offset = body_start
    for e in elements[:vertex_at]:
        offset += e[1] * np.dtype([(p, order + d) for p, d in e[2]]).itemsize
    dtype = np.dtype([(p, order + d) for p, d in props])
    if len(data) < offset + count * dtype.itemsize:
        raise PlyError(f"{path}: ends before its {count} vertices (truncated file?)")
    table = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return {p: table[p].astype(table[p].dtype.newbyteorder("=")) for p in dtype.names}


def points_and_colours(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """positions: (N, 3) float32; colours: (N, 3) uint8 sRGB, or None when the file has none."""
    vertex = read_vertices(path)
    if not all(k in vertex for k in "xyz"):
        raise PlyError(f"{path}: vertices have no x, y, z")
    positions = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float32)
    names = next((n for n in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
                  if all(k in vertex for k in n)), None)
    if names is None:
        return positions, None
    colours = np.stack([vertex[k] for k in names], axis=1)
    if colours.dtype.kind == "f":  # 0..1 floats
        colours = np.clip(np.round(colours * 255), 0, 255)
    return positions, colours.astype(np.uint8)


def write_points(path: str | os.PathLike, positions: np.ndarray, colours: np.ndarray | None = None,
                 comment: str = "shotfield points") -> None:
    """positions: (N, 3) float; colours: (N, 3) uint8 sRGB or None. Binary little-endian, written atomically."""
    positions = np.asarray(positions, dtype=np.float32)
    assert positions.ndim == 2 and positions.shape[1] == 3, positions.shape
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colours is not None:
        colours = np.asarray(colours, dtype=np.uint8)
        assert colours.shape == positions.shape, (colours.shape, positions.shape)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(len(positions), dtype=fields)
    for k, axis in enumerate("xyz"):
        vertex[axis] = positions[:, k]
    if colours is not None:
        for k, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = colours[:, k]
    types = {"<f4": "float", "u1": "uchar"}
    header = "ply\nformat binary_little_endian 1.0\n" + f"comment {comment}\n" + f"element vertex {len(vertex)}\n"
    header += "".join(f"property {types[t]} {name}\n" for name, t in fields) + "end_header\n"
    write_bytes(path, header.encode("ascii") + vertex.tobytes())
