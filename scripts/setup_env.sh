#!/usr/bin/env bash
# Creates .venv in the repository root (where the add-on and the benchmarks look for .venv/bin/shotfield)
# and installs Shotfield with its test extras. Safe to run again: it reinstalls only when pyproject.toml
# changed. torch is installed first as the pinned build, because a bare `torch` requirement would pull
# gigabytes of CUDA packages; the loose range in pyproject.toml is then already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_SPEC="${SHOTFIELD_TORCH:-torch==2.13.0}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "setup: Python 3.11 is required (bpy 4.5 is built for it); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.shotfield-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/shotfield ]; then
  exit 0
fi
echo "setup: installing $TORCH_SPEC and Shotfield into .venv (a few minutes the first time)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "$want" > "$stamp"
echo "setup: done ($(.venv/bin/shotfield --version))"
