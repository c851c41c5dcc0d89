"""Object removal with multi-view-consistent clean plates (SPIn-NeRF's pipeline, without learned parts).

One module per step; `backend/stages/inpaint.py` orchestrates them:

- `masks.py`      what to remove: the solve's motion masks ("moving") or a folder of user masks; clean-up,
                  safe dilation, reading and writing `masks/NNNNN.png`.
- `propagate.py`  a mask drawn on some frames -> every frame: static parts through the cameras and depth
                  (reprojected 3D points, occlusion-tested), moving parts by `track.py` or `snap.py`,
                  whichever fits the motion masks (one choice per shot).
- `track.py`      a moving object followed by its own motion (camera at its depth + its own velocity), its
                  visible pixels cut by GrabCut in a thin band around the moved outline: a mask that fits
                  the object where the solve's motion masks are 1.5-2x it.
- `snap.py`       a moving object followed by snapping to the motion-mask regions (the multi-view
                  "objectness" vote): exact where the motion masks are tight.
- `geometry.py`   pixels <-> world points with the job's cameras and planar depth (torch, any device).
- `scene.py`      the static scene representation: a point set fused from every source frame's unmasked
                  pixels (colour + depth), rendered at any camera with a soft z-buffer.
- `fill.py`       the plates: render the background other frames saw; regions nobody saw are filled in 2D
                  on a reference view (RGB + depth), lifted into the same point set, and rendered again.
- `plates.py`     writing plates at the working size (PNG, EXR when the footage was scene-linear EXR) and
                  at the footage size (original pixels outside the mask, feathered at its edge).
"""
