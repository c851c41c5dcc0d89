"""The settings of a run: one dataclass, saved as plain JSON values in job.json and hashed per stage.

Each stage names the fields its outputs depend on (`Stage.settings_fields`), so changing, say, the
quality recomputes the flow but not the ingest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import ShotfieldError

QUALITIES = ("preview", "final")
LAYER_KINDS = ("mpi", "msi")

#: Working-size long side per quality when --long-side is not given. Preview fits a 2-core CPU in minutes;
#: final is the 960x540 the GPU budget is set for.
DEFAULT_LONG_SIDE = {"preview": 320, "final": 960}


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to use: Python slice semantics on 0-based frame positions in the footage
    (`start` inclusive, `end` exclusive, None = to the end), every `step`-th frame."""

    start: int = 0
    end: int | None = None
    step: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "FrameRange":
        """'START:END[:STEP]' with empty parts allowed ('10:', ':40:2')."""
        if not text:
            return cls()
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ShotfieldError(f"--frames {text!r}: expected START:END or START:END:STEP, e.g. 0:40 or 0:80:2")
        try:
            values = [int(p) if p.strip() else None for p in parts]
        except ValueError as exc:
            raise ShotfieldError(f"--frames {text!r}: START, END and STEP must be whole numbers") from exc
        start, end = values[0] or 0, values[1]
        step = values[2] if len(values) == 3 and values[2] is not None else 1
        if start < 0 or (end is not None and end <= start) or step < 1:
            raise ShotfieldError(f"--frames {text!r}: need 0 <= START < END and STEP >= 1")
        return cls(start, end, step)

    def select(self, count: int) -> list[int]:
        """Source positions picked out of `count` frames."""
        return list(range(count))[self.start:self.end:self.step]


@dataclass(frozen=True)
class RunSettings:
    quality: str = "preview"
    """preview: CPU-friendly working size and iteration counts; final: full quality (GPU)."""
    device: str = "auto"
    """auto | cpu | cuda: where torch stages run. Does not change what a stage computes, so it is not hashed."""
    long_side: int | None = None
    """Long side of the working frames in pixels (never upscaled); None: 320 for preview, 960 for final."""
    frames: FrameRange = field(default_factory=FrameRange)
    """Source frame range and stride."""
    fps: float | None = None
    """Frame rate of an image sequence (video files carry their own); None: 24."""
    flow_gaps: tuple[int, ...] = (1, 2, 4)
    """Frame gaps the flow stage computes (later stages add their own through the stage registry)."""
    remove: str | None = None
    """What the clean plates remove: 'moving', a folder of masks (white = remove, named by frame number) or a
    CLICKS.json of points/boxes on frames (see docs/inpaint.md); None: the inpaint stage removes nothing."""
    effort: float = 1.0
    """Scales the training steps of the learned stages (depth, field, tracks, layers, inpaint): 0.25 gives a
    quick look, 2 a longer polish. Hashed by those stages only."""
    track_queries: str | None = None
    """A JSON list or .npy array of [frame, x, y] rows (working-frame pixels) the tracks stage follows,
    besides its default grid."""
    layer_reference: tuple[int, ...] | None = None
    """Reference frames (job frame numbers) of the layered meshes; None: the middle frame."""
    layer_kind: str = "mpi"
    """mpi: planes in disparity (ordinary footage); msi: spheres around the camera (wide or 360 footage)."""

    def __post_init__(self):
        if self.quality not in QUALITIES:
            raise ShotfieldError(f"--quality {self.quality!r} is not one of {', '.join(QUALITIES)}")
        if self.long_side is not None and not 16 <= self.long_side <= 16384:
            raise ShotfieldError(f"--long-side {self.long_side}: choose between 16 and 16384 pixels")
        if self.fps is not None and not self.fps > 0:
            raise ShotfieldError(f"--fps {self.fps}: must be positive")
        if not self.flow_gaps or any(g < 1 for g in self.flow_gaps):
            raise ShotfieldError(f"flow gaps {self.flow_gaps}: need whole numbers >= 1")
        if not 0.01 <= self.effort <= 100:
            raise ShotfieldError(f"--effort {self.effort}: choose between 0.01 and 100 (1 = the default training)")
        if self.layer_kind not in LAYER_KINDS:
            raise ShotfieldError(f"--layer-kind {self.layer_kind!r} is not one of {', '.join(LAYER_KINDS)}")
        if self.layer_reference is not None and (not self.layer_reference or min(self.layer_reference) < 0):
            raise ShotfieldError(f"--layer-reference {self.layer_reference}: need frame numbers >= 0")

    @property
    def working_long_side(self) -> int:
        return self.long_side or DEFAULT_LONG_SIDE[self.quality]

    def to_json(self) -> dict:
        d = asdict(self)
        d["flow_gaps"] = list(self.flow_gaps)
        d["layer_reference"] = list(self.layer_reference) if self.layer_reference is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RunSettings":
        d = dict(d)
        d["frames"] = FrameRange(**d.get("frames", {}))
        d["flow_gaps"] = tuple(d.get("flow_gaps", (1,)))
        if d.get("layer_reference") is not None:
            d["layer_reference"] = tuple(d["layer_reference"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})
