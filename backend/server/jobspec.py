"""A job's settings as a client sends them, checked, and turned into `shotfield run` options.

The keys mirror `shotfield run`'s options. Everything is checked before a job exists (pydantic for
types, RunSettings for the rest), so a bad setting is a 422 for the request, never a failed job.
`remove` takes only "moving": a mask folder would be a path on the server, which clients never name.
Stage names are checked against the registry's list without importing the stage modules (that would
pull torch and pycolmap, whose glog takes over SIGTERM, into the server process).
"""
from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.errors import ShotfieldError
from backend.settings import FrameRange, RunSettings
from backend.stages import STAGE_ORDER

from .errors import ApiError


def built_stages() -> list[str]:
    return [n for n in STAGE_ORDER if importlib.util.find_spec(f"backend.stages.{n}") is not None]


class JobSettings(BaseModel):
    """Options of `shotfield run` (see its --help); all optional."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] | None = Field(None, description="stages to run (with their prerequisites); default: all built",
                                     examples=[["ingest", "flow"]])
    frames: str | None = Field(None, description="source frame range START:END[:STEP], 0-based, END exclusive",
                               examples=["0:40"])
    quality: Literal["preview", "final"] = "preview"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    long_side: int | None = Field(None, ge=16, le=16384, description="working size long side in pixels")
    fps: float | None = Field(None, gt=0, description="frame rate of an image sequence (default 24)")
    flow_gaps: list[int] | None = Field(None, description="frame gaps for optical flow (default [1, 2, 4])")
    remove: Literal["moving"] | None = Field(None, description="what the clean plates remove")
    effort: float = Field(1.0, ge=0.01, le=100, description="scale of the learned stages' training (default 1)")
    layer_reference: list[int] | None = Field(None, description="reference frame(s) of the layered meshes")
    layer_kind: Literal["mpi", "msi"] = "mpi"

    @field_validator("stages", "flow_gaps", "layer_reference", mode="before")
    @classmethod
    def _comma_text(cls, value):
        """Also accept the command line's comma-separated form ("ingest,flow", "1,2,4")."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def check(self) -> None:
        """Raise ApiError(422) for settings `shotfield run` would refuse."""
        if self.stages is not None:
            if not self.stages:
                raise ApiError(422, "stages: name at least one stage, or leave it out to run all")
            built = built_stages()
            unknown = [s for s in self.stages if s not in built]
            if unknown:
                raise ApiError(422, f"stages: unknown or not yet built stage(s) {', '.join(unknown)}; "
                                    f"available: {', '.join(built)}")
        try:
            RunSettings(quality=self.quality, device=self.device, long_side=self.long_side,
                        frames=FrameRange.parse(self.frames), fps=self.fps,
                        flow_gaps=tuple(self.flow_gaps) if self.flow_gaps is not None else (1, 2, 4),
                        remove=self.remove, effort=self.effort, layer_kind=self.layer_kind,
                        layer_reference=tuple(self.layer_reference) if self.layer_reference is not None else None)
        except ShotfieldError as exc:
            raise ApiError(422, f"settings: {exc}") from None

    def run_options(self) -> list[str]:
        """The `shotfield run` options for these settings (footage and --job not included)."""
        args = ["--quality", self.quality, "--device", self.device]
        if self.stages:
            args += ["--stages", ",".join(self.stages)]
        if self.frames:
            args += ["--frames", self.frames]
        if self.long_side is not None:
            args += ["--long-side", str(self.long_side)]
        if self.fps is not None:
            args += ["--fps", repr(self.fps)]
        if self.flow_gaps is not None:
            args += ["--flow-gaps", ",".join(map(str, self.flow_gaps))]
        if self.remove:
            args += ["--remove", self.remove]
        if self.effort != 1.0:
            args += ["--effort", repr(self.effort)]
        if self.layer_reference is not None:
            args += ["--layer-reference", ",".join(map(str, self.layer_reference))]
        if self.layer_kind != "mpi":
            args += ["--layer-kind", self.layer_kind]
        return args
