"""Depth and object motion learned from the shot itself (Li, Gordon, Zhao, Casser & Angelova, CoRL 2020,
*Unsupervised Monocular Depth Learning in Dynamic Scenes*), trained per shot (test-time optimisation).

One module per step; `backend/stages/depth.py` orchestrates:

    shot.py         the job's inputs as arrays: frames, cameras, sparse points, motion masks, flow pairs
    geometry.py     pinhole unprojection/projection/warping in torch (OpenCV axes, pixel centres at i+0.5)
    triangulate.py  depth of static pixels from the flow and known cameras (the strong signal)
    objects.py      which pixels of the solve's (generous) motion masks really move
    prior.py        the depth the network starts from: holes filled, moving objects on the ground they touch,
                    occlusion edges snapped to the colour edges
    ground.py       the static scene's ground plane, which the ground-contact cue reads
    rigid.py        moving objects' depth consistent over time: identities, depth ratios from their own motion
    self_calibration.py  the focal length from the flow's epipolar geometry (learned-camera mode)
    networks.py     the depth network (U-Net, disparity) and the motion network (ego-motion, intrinsics,
                    residual translation field)
    losses.py       photometric L1 + SSIM, edge-aware smoothness, motion regularisers, cycle consistency
    train.py        the training schedule (initialisation, clipping, staged freezing, ramp-in)
    scene_flow.py   the object-motion output: each pixel's motion measured from depth, flow and cameras
    diagnose.py     which failure mode of the seed happened, if any; temporal consistency
    outputs.py      depth/NNNNN.exr, depth/motion, depth/confidence, depth/depth.json
    ego_motion.py   the solve stage's fallback: cameras from the learned ego-motion and intrinsics
"""
