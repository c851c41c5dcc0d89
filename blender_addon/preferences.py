"""Add-on preferences: how to reach the Shotfield backend (a local command or a server)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy

# Preferences are keyed by the add-on's module name. As an extension that is the repository root's
# package, `bl_ext.<repo>.shotfield`, one level above this package (`...shotfield.blender_addon`);
# never spell it out: the repository part depends on where the user installed it.
ADDON_PACKAGE = __package__.rpartition(".")[0] or __package__


def default_backend_command() -> str:
    """The `shotfield` command of the checkout this add-on lives in, if it has a virtualenv, else `shotfield`
    (found on PATH). The backend runs in its own Python environment; Blender's never imports it."""
    root = Path(__file__).resolve().parents[1]
    if sys.platform == "win32":
        candidate = root / ".venv" / "Scripts" / "shotfield.exe"
    else:
        candidate = root / ".venv" / "bin" / "shotfield"
    return str(candidate) if os.path.isfile(candidate) else "shotfield"


class ShotfieldPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    # Lower-case identifiers: the rest of the add-on compares `prefs.mode == "local"`.
    mode: bpy.props.EnumProperty(
        name="Backend",
        description="Where the reconstruction runs",
        items=(
            ("local", "Local", "Start the `shotfield` command on this computer"),
            ("server", "Server", "Send the job to a `shotfield serve` process over HTTP"),
        ),
        default="local",
    )
    backend_command: bpy.props.StringProperty(
        name="Backend command",
        description="Path of the `shotfield` executable in the backend's own Python environment",
        subtype="FILE_PATH",
        default=default_backend_command(),
    )
    server_url: bpy.props.StringProperty(
        name="Server URL",
        description="Address of a running `shotfield serve`",
        default="http://127.0.0.1:8000",
    )
    server_token: bpy.props.StringProperty(
        name="Token",
        description="Access token of the server (as `shotfield serve` printed or was given)",
        subtype="PASSWORD",
        default="",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "mode", expand=True)
        if self.mode == "local":
            layout.prop(self, "backend_command")
        else:
            layout.prop(self, "server_url")
            layout.prop(self, "server_token")
        row = layout.row()
        row.operator("shotfield.check_backend", icon="CHECKMARK")
        draw_check_result(row)


def draw_check_result(layout) -> None:
    """The last "Check" result: the backend's version and the device it sees, or what went wrong."""
    from .operators_backend import last_check

    result = last_check()
    if result is not None:
        layout.label(text=result.text, icon="CHECKMARK" if result.ok else ("TIME" if result.pending else "ERROR"))


def get_preferences(context=None) -> ShotfieldPreferences | None:
    """This add-on's preferences, or None when it is not enabled through Blender (e.g. a bare import)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


classes = (ShotfieldPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
