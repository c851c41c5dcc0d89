"""The camera-solve issue's bars, checked on Shotfield's records of the solve benchmark (PASS / FAIL / n/a).

On every rendered test shot:
- every frame has a camera (registered = frames);
- ATE ≤ half of pycolmap's best ATE (incremental or global mapping, default options, the same frames; see
  `solve.best_pycolmap`: a model that registered fewer than half the frames does not count) and
  ≤ 0.5 % of the path length (neither applies to a tripod shot, whose path has no length);
- mean rotation error ≤ 0.2°: `rpe_rotation_mean_deg`, the relative rotation error over all frame pairs,
  which needs no alignment (see solve_metrics' docstring for why). The line also prints, never hidden:
  the rotation error after a Sim(3) fitted jointly to centres and orientations (`rotation_joint_mean_deg`),
  after one fitted to the orientations alone (`orientation_mean_deg`), and the old figure after Umeyama on
  the centres alone (`rotation_mean_deg`, "positions-only"), whose rotation about the axis of a nearly
  straight path is ill-determined (pycolmap, ATE 0.14 % of the path on the default shot, scores 7.6°
  positions-only but 0.08° on the orientations alone);
- focal error ≤ 1 %;
- on a tripod shot: translation ≤ 1 % of the scene depth (`tripod_translation_pct`);
- side by side with the peers: ahead of each peer that solved the shot (lower ATE % of path, or on a
  tripod shot lower translation % of depth where the peer has one, AND lower rotation error, the same
  measure as the rotation bar; an exact tie on one of them, as when two tripod solvers both hold the
  translation at 0, is not behind, but one of them must be strictly lower), and every frame solved where
  a peer failed (a run error, or fewer than
  `solve.BEST_MIN_REGISTERED` of the frames registered);
- a 40-frame 320×240 shot solves in under 2 minutes on 2 cores: the median wall time of the whole
  `shotfield run --stages ingest,flow,solve` process (n/a on other sizes; the line says when the machine
  does not have 2 usable cores).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .records import Record, summarise
from .solve import BEST_MIN_REGISTERED, best_pycolmap

ATE_PERCENT_MAX = 0.5
ATE_SHARE_OF_PYCOLMAP = 0.5
ROTATION_DEG_MAX = 0.2
ROTATION_KEY = "rpe_rotation_mean_deg"   # the rotation measure of the bars (see the docstring)
FOCAL_PERCENT_MAX = 1.0
TRIPOD_TRANSLATION_PERCENT_MAX = 1.0
BUDGET_S = 120.0
BUDGET_SHOT = (40, (320, 240))   # frames, (width, height)
BUDGET_CORES = 2


@dataclass
class BarCheck:
    shot: str
    bar: str
    status: str          # "PASS" | "FAIL" | "n/a"
    value: str           # what was measured, as printed

    def as_dict(self) -> dict:
        return {"shot": self.shot, "bar": self.bar, "status": self.status, "value": self.value}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _bar(shot: str, bar: str, value, limit: float, fmt: str, why_na: str = "not measured") -> BarCheck:
    if not _finite(value):
        return BarCheck(shot, bar, "n/a", why_na)
    return BarCheck(shot, bar, "PASS" if value <= limit else "FAIL", fmt.format(value))


def check_shot(ours: Record, peers: list[Record], cores: int | None) -> list[BarCheck]:
    """The bars for Shotfield's record `ours` on one rendered shot, given the peers' records on it."""
    shot, m = ours.shot, ours.metrics
    if ours.error is not None:
        return [BarCheck(shot, "solve runs", "FAIL", ours.error[:100])]
    info = ours.details.get("shot", {})
    tripod = bool(info.get("tripod"))
    checks = [BarCheck(shot, "every frame has a camera", "PASS" if m.get("registered") == m.get("frames") else "FAIL",
                       str(m.get("registered_str")))]
    best = best_pycolmap(peers)
    if tripod:
        checks.append(BarCheck(shot, f"ATE ≤ {ATE_SHARE_OF_PYCOLMAP:g} × pycolmap best", "n/a", "tripod: no path"))
        checks.append(BarCheck(shot, f"ATE ≤ {ATE_PERCENT_MAX:g} % of path", "n/a", "tripod: no path"))
    else:
        if best is None:
            checks.append(BarCheck(shot, f"ATE ≤ {ATE_SHARE_OF_PYCOLMAP:g} × pycolmap best", "n/a", "no pycolmap result"))
        else:
            limit = ATE_SHARE_OF_PYCOLMAP * best.metrics["ate_percent"]
            check = _bar(shot, f"ATE ≤ {ATE_SHARE_OF_PYCOLMAP:g} × pycolmap best", m.get("ate_percent"), limit, "{:.3f} %")
            check.value += f" vs {limit:.3f} % ({best.method.split(' ')[0]} {best.metrics['ate_percent']:.3f} %)"
            checks.append(check)
        checks.append(_bar(shot, f"ATE ≤ {ATE_PERCENT_MAX:g} % of path", m.get("ate_percent"), ATE_PERCENT_MAX, "{:.3f} %"))
    rotation = _bar(shot, f"rotation mean ≤ {ROTATION_DEG_MAX:g}°", m.get(ROTATION_KEY), ROTATION_DEG_MAX,
                    "{:.3f}° all-pairs RPE")
    others = [f"{label} {m[key]:.3f}°" for key, label in (("rotation_joint_mean_deg", "joint Sim(3)"),
                                                         ("orientation_mean_deg", "orientations alone"),
                                                         ("rotation_mean_deg", "positions-only Sim(3)"))
              if _finite(m.get(key))]
    if others:
        rotation.value += f" ({', '.join(others)})"
    checks.append(rotation)
    checks.append(_bar(shot, f"focal ≤ {FOCAL_PERCENT_MAX:g} %", m.get("focal_percent"), FOCAL_PERCENT_MAX, "{:.2f} %"))
    if tripod:
        checks.append(_bar(shot, f"tripod translation ≤ {TRIPOD_TRANSLATION_PERCENT_MAX:g} % of depth",
                           m.get("tripod_translation_pct"), TRIPOD_TRANSLATION_PERCENT_MAX, "{:.3f} %", "no depth"))
    checks.append(check_peers(shot, m, peers, tripod))
    frames, size = info.get("frames"), info.get("size")
    bar = f"< {BUDGET_S:g} s ({BUDGET_SHOT[0]} f {BUDGET_SHOT[1][0]}x{BUDGET_SHOT[1][1]}, {BUDGET_CORES} cores)"
    if (frames, tuple(size) if size else None) != BUDGET_SHOT:
        checks.append(BarCheck(shot, bar, "n/a", f"shot is {frames} f {size}"))
    else:
        check = _bar(shot, bar, summarise(ours.wall_s)["median"], BUDGET_S, "{:.1f} s wall")
        if cores is not None and cores != BUDGET_CORES and check.status != "n/a":
            check.value += f" on {cores} cores"
        checks.append(check)
    return checks


def _peer_failed(peer: Record) -> str | None:
    """Why a peer did not solve the shot (a run error, too few frames registered), or None."""
    if peer.error is not None:
        return "error"
    m = peer.metrics
    if m.get("registered", 0) < BEST_MIN_REGISTERED * m.get("frames", math.inf):
        return f"{m.get('registered_str', '?')} registered"
    return None


def check_peers(shot: str, m: dict, peers: list[Record], tripod: bool) -> BarCheck:
    """The side-by-side bar: ahead of every peer that solved the shot, every frame where one failed."""
    bar = "ahead of every peer (ATE & rotation)"
    if not peers:
        return BarCheck(shot, bar, "n/a", "no peer ran")
    position_key, position_label = ("tripod_translation_pct", "T%depth") if tripod else ("ate_percent", "ATE%")
    ours_all = m.get("registered") == m.get("frames")
    ahead, parts = True, []
    for peer in sorted(peers, key=lambda r: r.method):
        name = peer.method.split(" ")[0]
        failed = _peer_failed(peer)
        if failed is not None:
            ahead &= ours_all
            parts.append(f"{name} failed ({failed})")
            continue
        pm, compared, strictly = peer.metrics, [], False
        for key, label in ((position_key, position_label), (ROTATION_KEY, "rot°")):
            if _finite(pm.get(key)):
                mine = m.get(key)
                if not _finite(mine):
                    ahead = False
                    compared.append(f"{label} ours n/a")
                    continue
                # An exact tie (both tripod solvers hold the translation at 0) is not behind.
                sign = "<" if mine < pm[key] else "=" if mine == pm[key] else ">"
                ahead &= sign != ">"
                strictly |= sign == "<"
                compared.append(f"{label} {mine:.3f}{sign}{pm[key]:.3f}")
        ahead &= strictly
        parts.append(f"{name} {' '.join(compared) or 'nothing comparable'}")
    return BarCheck(shot, bar, "PASS" if ahead else "FAIL", "; ".join(parts))


def check_bars(records: list[Record], cores: int | None) -> list[BarCheck]:
    """Every bar on every rendered shot of the solve records (shots without ground truth are skipped)."""
    out = []
    solve = [r for r in records if r.stage == "solve"]
    for ours in (r for r in solve if r.role == "shotfield"):
        if not ours.details.get("shot", {}).get("gt"):
            continue  # real footage: no ground truth
        out.extend(check_shot(ours, [r for r in solve if r.shot == ours.shot and r.role == "peer"], cores))
    return out


def format_bars(checks: list[BarCheck]) -> str:
    """The bars-check summary: one line per shot and bar."""
    if not checks:
        return ""
    width_shot = max(len(c.shot) for c in checks)
    width_bar = max(len(c.bar) for c in checks)
    lines = ["bars (camera-solve issue), Shotfield:"]
    lines += [f"  {c.shot.ljust(width_shot)}  {c.bar.ljust(width_bar)}  {c.status:<4}  {c.value}" for c in checks]
    passed = sum(c.status == "PASS" for c in checks)
    failed = sum(c.status == "FAIL" for c in checks)
    lines.append(f"  {passed} passed, {failed} failed, {len(checks) - passed - failed} n/a")
    return "\n".join(lines)
