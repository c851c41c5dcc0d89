#!/usr/bin/env bash
# The test command (README, CI): sets up .venv if needed, then runs the suite on the CPU.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/backend -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
export BLENDER_USER_RESOURCES="${BLENDER_USER_RESOURCES:-$PWD/tests/.cache/blender-user}"
exec .venv/bin/python -m pytest -m "not slow" -q "$@"
