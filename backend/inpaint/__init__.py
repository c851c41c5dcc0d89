"""Object removal with multi-view-consistent clean plates (SPIn-NeRF's pipeline, without learned parts).

One module per step; `backend/stages/inpaint.py` orchestrates them:

- `masks.py`      what to remove: the solve's motion masks ("moving") or a folder of user masks; clean-up,
                  safe dilation, reading and writing `masks/NNNNN.png`.
- `propagate.py`  a mask drawn on some frames -> every frame: static parts through the cameras and depth
                  (reprojected 3D points, occlusion-tested), moving parts by chaining the flow frame to
                  frame and snapping to the motion masks (the multi-view "objectness" vote).
- `geometry.py`   pixels <-> world points with the job's cameras and planar depth (torch, any device).
- `scene.py`      the static scene representation: a point set fused from every source frame's unmasked
                  pixels (colour + depth), rendered at any camera with a soft z-buffer.
- `fill.py`       the plates: render the background other frames saw; regions nobody saw are filled in 2D
                  on a reference view (RGB + depth), lifted into the same point set, and rendered again.
- `plates.py`     writing plates at the working size (PNG, EXR when the footage was scene-linear EXR) and
                  at the footage size (original pixels outside the mask, feathered at its edge).
"""
