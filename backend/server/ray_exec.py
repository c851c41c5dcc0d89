"""Running jobs on a Ray cluster: a shot's stages run as Ray tasks, with GPUs for the stages that use torch.

A task runs `shotfield run ... --stages STAGES` as a child process on whichever node Ray picks, so a
stage on Ray is exactly a stage run locally: same resumability, same exit codes, same outputs.
Consecutive stages with the same resource needs share one task (`groups`): the CPU stages of a shot in
one, its torch stages in the next, each asking Ray for what it needs. The job
folder must be on storage every node sees at the same path (the server's ROOT, or `submit`'s --jobs):
tasks write into it and the server reads job.json and progress.jsonl from it as usual. `check_shared_storage`
proves that on every node before the first job.

Shots run side by side as far as the cluster's resources allow (each task asks for 1 CPU, and torch
stages for `gpus` GPUs); the tasks of one shot run in order. Cancelling writes a flag file the task
watches (it then sends SIGTERM to its child, which marks the stage cancelled); a task not yet started
is simply withdrawn (ray.cancel).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .local_exec import Outcome, RunRequest, child_command, child_env, log_tail, run_arguments

CANCEL_FLAG = "cancel"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
EXIT_USAGE, EXIT_CANCELLED = 2, 143


def plan_on_worker(job_dir: str, stages: list[str] | None) -> list[tuple[str, bool]]:
    """(stage, uses torch) in run order: the requested stages plus unfinished prerequisites."""
    from backend.runner import plan_stages
    from exporters import job_manifest

    try:
        manifest = job_manifest.read_manifest(job_dir)
    except job_manifest.JobFolderError:
        manifest = job_manifest.new_manifest()

    class _Records:  # what plan_stages reads of a Job, without taking its lock
        @staticmethod
        def stage(name):
            return manifest["stages"].get(name, job_manifest.empty_stage_record())

    return [(s.name, s.uses_torch) for s in plan_stages(stages, _Records())]


def run_stage_on_worker(arguments: list[str], log: str, cancel_flag: str) -> tuple[int, str | None]:
    """One `shotfield run` child on this node; SIGTERM to it when the flag file appears or Ray cancels us."""
    since = os.path.getsize(log) if os.path.exists(log) else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(child_command(arguments), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)
    stopped = False
    try:
        while proc.poll() is None:
            if not stopped and os.path.exists(cancel_flag):
                os.killpg(proc.pid, signal.SIGTERM)
                stopped = True
            time.sleep(0.2)
    except KeyboardInterrupt:  # ray.cancel
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        raise
    return proc.returncode, log_tail(Path(log), since)


def read_on_worker(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


class RayExecutor:
    def __init__(self, address: str, gpus: float | None = None):
        # A cluster started where ~/.ray/auth_token exists requires Ray's token authentication, but a driver
        # that connects to an address sends the token only with RAY_AUTH_MODE=token: follow the file.
        if AUTH_MODE_ENV not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
            os.environ[AUTH_MODE_ENV] = "token"
        try:
            import ray  # after the line above: Ray reads its auth mode when imported
        except ImportError:
            raise RuntimeError("--ray needs Ray in the backend's environment: pip install 'shotfield[server]'") from None
        # ray.init installs SIGTERM/SIGINT handlers of its own in the driver; the server's stay in charge.
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=address, namespace="shotfield", log_to_driver=False, logging_level="warning")
        except ConnectionError as exc:
            raise RuntimeError(f"cannot reach the Ray cluster at {address} ({exc}); start it with `ray start --head`") from None
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        self.ray, self.address, self.gpus = ray, address, gpus
        self._plan = ray.remote(num_cpus=0, max_retries=2)(plan_on_worker)
        self._stage = ray.remote(run_stage_on_worker)
        self._read = ray.remote(num_cpus=0)(read_on_worker)

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        return f"Ray cluster {self.address}: {nodes} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs"

    def check_shared_storage(self, folder: Path) -> None:
        """Every live node must read a file written here, at the same path; RuntimeError otherwise."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        folder.mkdir(parents=True, exist_ok=True)
        probe, secret = folder / f".ray-probe-{secrets.token_hex(4)}", secrets.token_hex(16)
        probe.write_text(secret)
        try:
            for node in (n for n in self.ray.nodes() if n.get("Alive")):
                strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
                seen = self.ray.get(self._read.options(scheduling_strategy=strategy).remote(str(probe)), timeout=300)
                if seen != secret:
                    raise RuntimeError(f"Ray node {node.get('NodeManagerAddress')} does not see {folder}: job folders "
                                       "must be on storage mounted at the same path on every node")
        finally:
            probe.unlink(missing_ok=True)

    def gpus_for(self, uses_torch: bool, device: str) -> float:
        if not uses_torch or device == "cpu":
            return 0
        if self.gpus is not None:
            return self.gpus
        return 1 if self.ray.cluster_resources().get("GPU", 0) > 0 else 0

    def groups(self, plan: list[tuple[str, bool]], device: str) -> list[tuple[list[str], float]]:
        """Consecutive stages that ask for the same GPUs go in one task (one process start, not one per
        stage): typically the CPU stages (ingest, flow, solve) in one and the torch stages in another."""
        groups: list[tuple[list[str], float]] = []
        for name, uses_torch in plan:
            gpus = self.gpus_for(uses_torch, device)
            if groups and groups[-1][1] == gpus:
                groups[-1][0].append(name)
            else:
                groups.append(([name], gpus))
        return groups

    def start(self, request: RunRequest) -> "RayRun":
        return RayRun(self, request)


@dataclass
class RayRun:
    executor: RayExecutor
    request: RunRequest
    _stop: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> Outcome:
        ex, req, ray = self.executor, self.request, self.executor.ray
        flag = req.control / CANCEL_FLAG
        flag.unlink(missing_ok=True)
        req.job_dir.mkdir(parents=True, exist_ok=True)
        try:
            plan = ray.get(ex._plan.remote(str(req.job_dir), req.stages))
        except ray.exceptions.RayTaskError as exc:
            return Outcome(EXIT_USAGE, str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1])
        for stages, gpus in self.executor.groups(plan, req.device):
            if self._stop.is_set():
                return Outcome(EXIT_CANCELLED, "cancelled")
            have = ray.cluster_resources().get("GPU", 0)
            if gpus > have:
                return Outcome(EXIT_USAGE, f"stage(s) {', '.join(stages)} ask for {gpus:g} GPU(s) but the Ray cluster "
                                           f"has {have:g}; use device cpu or add GPU nodes")
            name = f"shotfield {','.join(stages)} {req.job_dir.name}"
            ref = ex._stage.options(num_cpus=1, num_gpus=gpus, max_retries=1, name=name).remote(
                run_arguments(req, stages), str(req.log), str(flag))
            code, message = self._result(ref, flag)
            if code != 0:
                return Outcome(code, message)
        return Outcome(0)

    def _result(self, ref, flag: Path) -> tuple[int, str | None]:
        ray, asked, withdrawn = self.executor.ray, None, False
        while not ray.wait([ref], timeout=0.5)[0]:
            if self._stop.is_set():
                if asked is None:
                    flag.touch()
                    asked = time.monotonic()
                elif not withdrawn and time.monotonic() - asked > 2.0:
                    ray.cancel(ref)  # still waiting for resources: withdraw it (a running one stops as for the flag)
                    withdrawn = True
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return EXIT_CANCELLED, "cancelled"
        except ray.exceptions.RayError as exc:
            return 1, f"the Ray task failed: {str(exc).strip().splitlines()[-1]}"

    def stop(self) -> None:
        self._stop.set()
