"""OmniMotion (Wang et al., ICCV 2023), small enough to train in minutes: every pixel of a shot tracked through
occlusions by a quasi-3D canonical volume and per-frame invertible maps into it.

    geometry.py   the fixed part of each frame's map: pixel + ray sample -> camera space -> canonical space
                  (the solved cameras where the solve succeeded, a shared virtual camera otherwise), and the
                  depth that initialises the local 3D spaces (depth/*.exr, else triangulated from flow)
    model.py      the learned part: Real-NVP affine coupling layers conditioned on a per-frame latent code,
                  and the canonical density + colour field (tri-planes, tiny decoder); checkpoint I/O
    flow_data.py  the training correspondences: every flow gap, forward-backward consistent pixels, chained
                  flow for gaps the flow stage did not compute, with hard-example mining
    train.py      the losses (flow, photometric, acceleration, depth) and the optimisation loop
    query.py      tracking query points [frame, x, y] forwards and backwards: 2D positions, visibility, world
"""
