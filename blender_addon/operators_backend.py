"""The preferences' "Check" button: is the backend there, which version, and which device does it see?

Local: runs `<backend command> --version` (it imports torch, a few seconds). Server: asks the server's
version. Either way in a worker thread, so the preferences stay responsive; a timer picks the answer up on
the main thread. In background mode it waits.
"""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

import bpy

from . import remote_jobs
from .preferences import default_backend_command, get_preferences

TIMEOUT = 120.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    text: str
    pending: bool = False


_result: CheckResult | None = None
_lock = threading.Lock()


def last_check() -> CheckResult | None:
    with _lock:
        return _result


def _set(result: CheckResult) -> None:
    global _result
    with _lock:
        _result = result


def check_local(command: str, timeout: float = TIMEOUT) -> CheckResult:
    """Run `command --version`; its line ("shotfield 0.1.0 (torch 2.13.0, device cpu (2 threads))") or why not."""
    try:
        done = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return CheckResult(False, f"Not found: {command} (set the backend command to the `shotfield` of its environment)")
    except PermissionError:
        return CheckResult(False, f"Not executable: {command}")
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"{command} --version did not answer within {timeout:.0f} s")
    except OSError as exc:
        return CheckResult(False, f"{command}: {exc}")
    line = (done.stdout.strip() or done.stderr.strip()).splitlines()
    text = line[-1] if line else f"exit code {done.returncode}"
    if done.returncode != 0 or not text.startswith("shotfield"):
        return CheckResult(False, f"Not a working Shotfield backend: {text}")
    return CheckResult(True, text)


def check_server(url: str, token: str) -> CheckResult:
    remote = remote_jobs.server_module()
    if remote is None:
        return CheckResult(False, "Server support is not installed in this build of the add-on")
    try:
        info = remote.ShotfieldServer(url, token).version()
    except remote.ServerError as exc:
        return CheckResult(False, f"{url}: {exc}")
    return CheckResult(True, f"shotfield {info.get('version', '?')} on {url} ({info.get('device', '?')})")


class SHOTFIELD_OT_check_backend(bpy.types.Operator):
    """Check that the backend answers, and show its version and the compute device it sees"""

    bl_idname = "shotfield.check_backend"
    bl_label = "Check"

    def execute(self, context):
        prefs = get_preferences(context)
        if prefs is not None and prefs.mode == "server":
            work = lambda: check_server(prefs.server_url, prefs.server_token)  # noqa: E731
        else:
            command = bpy.path.abspath((prefs.backend_command if prefs is not None else "") or default_backend_command())
            work = lambda: check_local(command)  # noqa: E731
        if bpy.app.background:
            result = work()
            _set(result)
            self.report({"INFO"} if result.ok else {"ERROR"}, result.text)
            return {"FINISHED"} if result.ok else {"CANCELLED"}
        _set(CheckResult(False, "Checking...", pending=True))
        threading.Thread(target=lambda: _set(work()), name="shotfield-check", daemon=True).start()
        bpy.app.timers.register(_redraw_when_done, first_interval=0.5)
        return {"FINISHED"}


def _redraw_when_done():
    result = last_check()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()
    return 0.5 if result is not None and result.pending else None


classes = (SHOTFIELD_OT_check_backend,)
register, unregister = bpy.utils.register_classes_factory(classes)
