#!/usr/bin/env bash
# The main job end to end: set up .venv, render a small test shot with Blender (Cycles, CPU), run
# `shotfield run` on it, and import the result into a new .blend (demo/shotfield_demo.blend).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
export BLENDER_USER_RESOURCES="${BLENDER_USER_RESOURCES:-$PWD/demo/blender-user}"
if [ ! -f demo/shot/shot.json ]; then
  echo "demo: rendering a 24-frame 320x240 test shot with Blender"
  .venv/bin/python scripts/make_test_shot.py --out demo/shot --frames 24 --width 320 --height 240
fi
.venv/bin/shotfield run demo/shot/frames --job demo/test_shot
.venv/bin/shotfield status demo/test_shot
.venv/bin/python scripts/import_job.py -- demo/test_shot demo/shotfield_demo.blend
echo "demo: open demo/shotfield_demo.blend in Blender 4.2+ (job folder: demo/test_shot)"
