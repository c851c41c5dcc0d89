"""The camera solve, one concept per module; `backend/stages/solve.py` runs them in this order:

    checks.py        refuse footage no solver can handle (no texture, no camera motion), saying why
    motion_masks.py  what moves independently of the camera, from the flow (before and after the solve)
    correspondences.py  flow correspondences in static regions over several frame gaps
    initial.py       the first solve and the camera model choice (full or tripod), using:
      tripod.py        low-parallax detection and the rotation + focal initialisation of a nodal pan
      sfm.py           pycolmap on keyframes (with the motion masks), then every other frame by PnP
      fallback.py      the hook for shots where SfM fails (learned ego-motion of the depth stage)
    dense_ba.py      Levenberg-Marquardt bundle adjustment over the correspondences (torch)
    world_align.py   ground plane, up, origin and scale of the world frame
    outputs.py       the points PLY and the motion mask PNGs
    track.py         the solved cameras (`CameraTrack`) and the rotation helpers

Pixel coordinates everywhere follow exporters/conventions.py: (0, 0) is the top-left corner of the
top-left pixel, pixel centres at (i + 0.5, j + 0.5) -- which is also COLMAP's convention, so keypoints
from pycolmap need no shift. Poses are OpenCV `world_from_camera` (x right, y down, z forward).
"""
