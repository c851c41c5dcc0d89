"""The registry of stages, in the order they run. Adding a stage is adding one module to this package,
which defines `STAGE = Stage(...)`, and its name to `STAGE_ORDER`.

A stage reads what earlier stages wrote to the job folder and writes only its own outputs, atomically.
Import native libraries (pycolmap, open3d) at the top of the stage module, not inside `run`: some install
signal handlers of their own when first imported, and the runner installs its cancel handlers after the
registry has loaded every stage module.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..runner import StageContext

#: DESIGN.md's stage order. Names listed here without a module yet are reported as not built.
STAGE_ORDER = ("ingest", "flow", "solve", "depth", "field", "tracks", "layers", "inpaint")


@dataclass(frozen=True)
class Stage:
    name: str
    run: "Callable[[StageContext], dict[str, str] | None]"
    """Does the work; returns the outputs it wrote as {name: path relative to the job folder}."""
    requires: tuple[str, ...] = ()
    """Stages whose outputs it reads; their keys are part of this stage's key."""
    settings_fields: tuple[str, ...] = ()
    """RunSettings fields its outputs depend on."""
    version: int = 1
    """Bump when the algorithm changes so that old results are recomputed."""
    outputs: tuple[str, ...] = ()
    """Paths (relative to the job) that must exist for a finished stage to be trusted and skipped."""
    uses_torch: bool = False
    """Resolve --device for it (OpenCV-only stages run on the CPU and record 'cpu')."""
    flow_gaps: tuple[int, ...] = ()
    """Optical-flow frame gaps this stage reads; the flow stage computes the union."""
    fingerprint: "Callable[[StageContext], Any] | None" = field(default=None)
    """Extra inputs to hash (e.g. the footage files' sizes and times)."""


@cache
def registered_stages() -> dict[str, Stage]:
    """Name -> Stage for every stage module that exists, in run order."""
    stages = {}
    for name in STAGE_ORDER:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # that stage is not built yet
            raise
        stages[name] = module.STAGE
    return stages


def required_flow_gaps() -> tuple[int, ...]:
    """Every frame gap some registered stage reads."""
    return tuple(sorted({g for s in registered_stages().values() for g in s.flow_gaps}))
