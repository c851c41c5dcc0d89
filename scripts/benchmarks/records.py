"""Benchmark records (one method on one shot for one stage), their JSON form and the printed table."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Record:
    """One method on one shot for one stage: its metrics and one entry per repeat for the costs."""

    stage: str
    shot: str
    method: str
    role: str                                   # "shotfield" | "peer"
    metrics: dict = field(default_factory=dict)
    wall_s: list = field(default_factory=list)     # whole process, per repeat
    compute_s: list = field(default_factory=list)  # the stage's own seconds (job.json) / the peer's loop
    peak_mb: list = field(default_factory=list)    # peak RSS of the process, MiB
    error: str | None = None
    details: dict = field(default_factory=dict)


def summarise(values: list[float]) -> dict:
    """Median and spread of repeated measurements: {"median", "spread" (half the range), "min", "max", "n"}."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"median": None, "spread": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "spread": (max(v) - min(v)) / 2, "min": min(v), "max": max(v), "n": len(v)}


def jsonable(value):
    """Plain JSON values: NaN and ±inf become None (JSON has no NaN), numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_to_json(record: Record) -> dict:
    out = asdict(record)
    for key in ("wall_s", "compute_s", "peak_mb"):
        out[key + "_summary"] = summarise(getattr(record, key))
    return jsonable(out)


def _fmt_cost(values: list[float], digits: int) -> str:
    s = summarise(values)
    if s["median"] is None:
        return "-"
    return f"{s['median']:.{digits}f}" + (f" ±{s['spread']:.{digits}f}" if s["n"] > 1 else "")


def _fmt_metric(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def format_table(records: list[Record], columns: dict[str, list[tuple[str, str, str]]]) -> str:
    """A plain-text table: stage, shot, method, the stage's metric columns, then the costs.
    columns: per stage, [(metric key, header, format)]; records of one stage share one header block."""
    lines = []
    for stage in dict.fromkeys(r.stage for r in records):
        cols = columns.get(stage, [])
        header = ["stage", "shot", "method", *[c[1] for c in cols], "compute s", "wall s", "peak MB"]
        rows, failures = [], []
        for r in (r for r in records if r.stage == stage):
            failed = r.error is not None
            rows.append([r.stage, r.shot, r.method,
                         *["-" if failed else _fmt_metric(r.metrics.get(k), f) for k, _, f in cols],
                         *(["-"] * 3 if failed else [_fmt_cost(r.compute_s, 2), _fmt_cost(r.wall_s, 2),
                                                    _fmt_cost(r.peak_mb, 0)])])
            failures.append(f"  FAILED: {r.error}"[:120] if failed else "")
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + fail).rstrip()
                     for row, fail in zip(rows, failures))
        lines.append("")
    lines.append("costs: median ±half the range over repeats; compute s = the stage's own time (Shotfield: "
                 "job.json) or the peer's loop; wall s and peak MB: the whole process")
    return "\n".join(lines)


@dataclass(frozen=True)
class StageBenchmark:
    """One stage's benchmark: `run(ctx, shot) -> list[Record]`, its table columns (key, header, format) and,
    where the stage's issue has bars, a summary: records of every stage -> (printed text, JSON-able list)."""

    run: "Callable[..., list[Record]]"
    columns: list
    summary: "Callable[[list[Record]], tuple[str, list]] | None" = None
