"""One layers run per test session, shared by the backend, exporter and Blender tests of the layers (the stage
takes about half a minute on the test shot, too long to repeat per file)."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_EFFORT, copy_job, run_stages


def layers_job(test_shot, ground_truth_pipeline: Path) -> Path:
    """The ground-truth job (GT cameras, depth, motion masks) with the layers stage run at its TEST_EFFORT,
    reference frame: the middle one. Read-only: copy_job it before changing anything.

    Kept beside the session's ground-truth job (a folder of this session only), found again by its finished
    layers.json: a module-level cache would miss when pytest imports this module under two names."""
    job = ground_truth_pipeline.parent.parent / "layers-shared" / "job"
    if not (job / "layers" / "layers.json").is_file():
        if job.exists():
            import shutil

            shutil.rmtree(job)
        copy_job(ground_truth_pipeline, job)
        run_stages(test_shot, job, ["layers"], effort=TEST_EFFORT["layers"])
    return job
