"""The dynamic scene field (NSFF-style): a static radiance field plus a time-conditioned dynamic field with
forward/backward scene flow and disocclusion weights, blended per sample, trained on the shot itself.

One module per step: `space` (scene box, contraction, rays), `model` (the factorised planes and decoders,
checkpoints), `volume` (sampling and compositing), `data` (what training reads from the job), `losses`
(NSFF's losses), `train` (the loop and its schedule), `render` (any camera at any time), `point_cache`
(per-frame coloured points with scene-flow velocities). docs/field.md describes the method.
"""
