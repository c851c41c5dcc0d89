from __future__ import annotations

import json

import pytest

from backend.errors import ShotfieldError
from backend.settings import FrameRange, RunSettings


@pytest.mark.parametrize("text, count, expected", [
    (None, 5, [0, 1, 2, 3, 4]), ("1:4", 10, [1, 2, 3]), ("2:", 5, [2, 3, 4]), (":6:2", 10, [0, 2, 4]),
    ("0:100:30", 50, [0, 30]),
])
def test_frame_range_is_a_python_slice(text, count, expected):
    assert FrameRange.parse(text).select(count) == expected


@pytest.mark.parametrize("text", ["5", "a:b", "5:2", "0:4:0", "-1:3", "1:2:3:4"])
def test_bad_frame_ranges_name_the_option(text):
    with pytest.raises(ShotfieldError, match="--frames"):
        FrameRange.parse(text)


def test_settings_round_trip_as_plain_json_and_validate():
    s = RunSettings(quality="final", frames=FrameRange(1, 9, 2), flow_gaps=(1, 3))
    assert RunSettings.from_json(s.to_json()) == s
    assert s.working_long_side == 960 and RunSettings(long_side=200).working_long_side == 200
    with pytest.raises(ShotfieldError, match="--quality"):
        RunSettings(quality="ultra")


def test_learned_stage_settings_round_trip_and_name_their_option():
    s = RunSettings(effort=0.25, track_queries="q.json", layer_reference=(10, 30), layer_kind="msi")
    back = RunSettings.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s and back.layer_reference == (10, 30)
    for bad, option in ((dict(effort=0), "--effort"), (dict(layer_kind="cube"), "--layer-kind"),
                        (dict(layer_reference=()), "--layer-reference"), (dict(layer_reference=(-1,)), "--layer-reference")):
        with pytest.raises(ShotfieldError, match=option):
            RunSettings(**bad)


def test_server_job_settings_pass_the_learned_stage_options_to_run():
    from backend.server.jobspec import JobSettings

    spec = JobSettings(effort=0.5, layer_reference="4,8", layer_kind="msi")
    spec.check()
    args = spec.run_options()
    assert args[args.index("--effort") + 1] == "0.5" and args[args.index("--layer-reference") + 1] == "4,8"
    assert args[args.index("--layer-kind") + 1] == "msi"
    assert "--effort" not in JobSettings().run_options()
