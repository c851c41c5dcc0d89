"""File formats of the job folder: numpy and the standard library for what the add-on reads
(job manifest, cameras.json, tracks.npz, conventions); heavier format libraries (OpenEXR, USD, trimesh)
are imported only by the writers that need them. Never imports torch or bpy."""
