"""The panel's "Open Log" button: the job's `log.txt` (stage by stage, with tracebacks of internal errors),
or, when the backend stopped before writing one, what the process printed."""
from __future__ import annotations

import os

import bpy

from .jobs import OUTPUT_FILE
from .properties import resolved_job_dir

LOG_FILE = "log.txt"
TAIL_LINES = 40


def log_path(job_dir: str | None) -> str | None:
    """The most useful log of a job folder, or None if it has none."""
    if not job_dir:
        return None
    for name in (LOG_FILE, OUTPUT_FILE):
        path = os.path.join(job_dir, name)
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


class SHOTFIELD_OT_open_log(bpy.types.Operator):
    """Open the job's log (what each stage did, and the details of errors)"""

    bl_idname = "shotfield.open_log"
    bl_label = "Open Log"

    @classmethod
    def poll(cls, context):
        return log_path(resolved_job_dir(context)) is not None

    def execute(self, context):
        path = log_path(resolved_job_dir(context))
        if path is None:
            self.report({"ERROR"}, "This job has no log yet")
            return {"CANCELLED"}
        if bpy.app.background:  # no desktop to open a file on: print its end
            with open(path, encoding="utf-8", errors="replace") as f:
                print("".join(f.readlines()[-TAIL_LINES:]), end="")
            self.report({"INFO"}, f"Log: {path}")
            return {"FINISHED"}
        # In Blender's text editor when one is open (always available, and it reloads), else the system's viewer.
        text = next((t for t in bpy.data.texts if bpy.path.abspath(t.filepath) == path), None)
        if text is None:
            text = bpy.data.texts.load(path)
        else:
            text.clear()
            with open(path, encoding="utf-8", errors="replace") as f:
                text.write(f.read())
        for area in context.screen.areas if context.screen else ():
            if area.type == "TEXT_EDITOR":
                area.spaces.active.text = text
                break
        else:
            bpy.ops.wm.path_open(filepath=path)
        self.report({"INFO"}, f"Log: {path}")
        return {"FINISHED"}


classes = (SHOTFIELD_OT_open_log,)
register, unregister = bpy.utils.register_classes_factory(classes)
