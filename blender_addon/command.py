"""The settings of one run, as the add-on's panel collects them, and the `shotfield run` command line for them.

Standard library only: the same `RunRequest` goes to a local process (`argv`) or to a server
(`server_settings`, whose keys mirror the command's options).
"""
from __future__ import annotations

from dataclasses import dataclass

#: The panel's outputs and the backend stage that makes each, in DESIGN.md's stage order. The first two
#: stages always run (every other stage reads them); a finished stage is skipped by the backend.
OUTPUT_STAGES = (
    ("camera", "solve"),
    ("depth", "depth"),
    ("point_cache", "field"),
    ("tracks", "tracks"),
    ("layers", "layers"),
    ("clean_plates", "inpaint"),
)
BASE_STAGES = ("ingest", "flow")
STAGE_ORDER = ("ingest", "flow", "solve", "depth", "field", "tracks", "layers", "inpaint")


@dataclass(frozen=True)
class RunRequest:
    job_dir: str
    footage: str | None = None          # None: the job's recorded footage (re-running an existing job)
    stages: tuple[str, ...] = BASE_STAGES
    frames: str | None = None           # "START:END[:STEP]" (0-based footage positions, END exclusive)
    quality: str = "preview"
    device: str = "auto"
    long_side: int | None = None
    fps: float | None = None            # image sequences only; videos carry their own
    remove: str | None = None           # clean plates: "moving" or a folder of masks
    effort: float = 1.0                 # scale of the learned stages' training
    layer_kind: str = "mpi"             # layered meshes: "mpi" planes or "msi" spheres
    layer_reference: int | None = None  # layered meshes: the job frame they are built for; None: the middle

    def argv(self, backend_command: str) -> list[str]:
        """`shotfield run ...` for a local process. `--no-progress`: no terminal bar in the captured output."""
        argv = [backend_command, "run"]
        if self.footage:
            argv.append(self.footage)
        argv += ["--job", self.job_dir, "--stages", ",".join(self.stages), "--quality", self.quality,
                 "--device", self.device, "--no-progress"]
        if self.frames:
            argv += ["--frames", self.frames]
        if self.long_side:
            argv += ["--long-side", str(self.long_side)]
        if self.fps:
            argv += ["--fps", f"{self.fps:g}"]
        if self.remove:
            argv += ["--remove", self.remove]
        if self.effort != 1.0:
            argv += ["--effort", f"{self.effort:g}"]
        if "layers" in self.stages:
            argv += ["--layer-kind", self.layer_kind]
            if self.layer_reference is not None:
                argv += ["--layer-reference", str(self.layer_reference)]
        return argv

    def server_settings(self) -> dict:
        """The settings a server's `create_job` takes (the same meaning as the command's options)."""
        settings = {"stages": list(self.stages), "quality": self.quality, "device": self.device}
        for key in ("frames", "long_side", "fps", "remove"):
            value = getattr(self, key)
            if value:
                settings[key] = value
        if self.effort != 1.0:
            settings["effort"] = self.effort
        if "layers" in self.stages:
            settings["layer_kind"] = self.layer_kind
            if self.layer_reference is not None:
                settings["layer_reference"] = [self.layer_reference]
        return settings


def stages_for_outputs(outputs) -> tuple[str, ...]:
    """The stages to ask for, in run order, for a set of output names (see OUTPUT_STAGES)."""
    wanted = set(BASE_STAGES) | {stage for output, stage in OUTPUT_STAGES if output in set(outputs)}
    return tuple(s for s in STAGE_ORDER if s in wanted)


def parse_stages(text: str) -> tuple[str, ...]:
    """"ingest, flow,solve" -> ("ingest", "flow", "solve"); raises ValueError naming an unknown stage."""
    stages = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGE_ORDER]
    if unknown or not stages:
        raise ValueError(f"unknown stage(s) {', '.join(unknown) or '(none given)'}; stages are {', '.join(STAGE_ORDER)}")
    return stages
