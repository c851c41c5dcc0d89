"""Blender data from a job folder's outputs: one module per output (camera, and later depth, points, tracks,
layers, plates), each with a `create(context, ...)`.

Import happens in two phases, as in Blender's glTF importer: first read and check the files (through
`exporters`, which knows the formats, plus the checks Blender's representation needs), touching no
Blender data; then build. Every problem found in the first phase is an `ImportFailed` (or the format's
own error) with a plain message, which the operator reports.
"""


class ImportFailed(ValueError):
    """A job output cannot become Blender data; the message says why in words for the artist."""
