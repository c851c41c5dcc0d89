"""scripts/load_test_server.py runs end to end (its figures belong to the benchmark, not to a test)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_load_script_reports_latency_and_slowdown(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "load_test_server.py"), "--clients", "10",
                           "--interval", "0.2", "--frames", "8", "--long-side", "160", "--repeats", "1",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["errors"] == 0 and result["polls"] > 10
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]
    assert len(result["baseline_flow_s"]) == len(result["loaded_flow_s"]) == 1
    assert result["server_cpu_ms_per_poll"] > 0
