"""Load test of `shotfield serve`: status polls against a running job, and what they cost the job.

    python scripts/load_test_server.py [--clients 50] [--interval 0.5] [--duration 30] [--repeats 2]
                                       [--frames 36] [--json OUT.json] [--url URL --token TOKEN]

Starts a server on 127.0.0.1 (any free port; its rate limit off, since every client here has one
address) unless --url is given, makes a synthetic shot whose flow stage runs for about half a minute
on 2 cores, then alternates:
  - a baseline job alone, and
  - the same job while a second process runs `--clients` pollers (threads with keep-alive
    connections), each sending GET /v1/jobs/ID every `--interval` s (0: back to back) from the
    moment the job's flow stage starts until the job ends or `--duration` s pass.
It prints the status latency (p50/p95/p99/max, over every poll), the request rate, errors, the
job's slowdown (the flow stage's seconds from job.json, loaded against baseline, medians over
`--repeats`, and per pair), the job's own CPU seconds and the server's CPU per poll. On a machine
shared with other work, wall-time slowdowns are noisy: compare the pairs, and the job's CPU seconds.
Traffic goes to loopback only, and every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MAX_SECONDS = 600  # no single wait here runs longer


def poll_worker(url: str, token: str, job_id: str, clients: int, duration: float, interval: float, out: str) -> None:
    """The second process: `clients` threads polling the job's status; latencies (ms) to `out` as JSON."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"}
    stop_at = time.monotonic() + min(duration, MAX_SECONDS)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            try:
                conn.request("GET", f"/v1/jobs/{job_id}", headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    errors[i] += 1
                elif json.loads(body)["state"] in ("done", "failed", "cancelled"):
                    latencies[i].append((time.perf_counter() - began) * 1000)
                    break
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            latencies[i].append((time.perf_counter() - began) * 1000)
            if interval > 0:
                time.sleep(max(0.0, interval - (time.perf_counter() - began)))
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(MAX_SECONDS)
    Path(out).write_text(json.dumps({"latencies_ms": [x for per in latencies for x in per], "errors": sum(errors),
                                     "seconds": time.monotonic() - began}))


def start_server(root: Path) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(root.parent / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--root", str(root), "--port", "0",
                             "--rate-limit", "0"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (root / "address").is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {(root.parent / 'server.log').read_text()}")
        time.sleep(0.05)
    time.sleep(0.5)
    return proc, (root / "address").read_text().strip(), (root / "token").read_text().strip()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process, or of its finished children (the jobs it ran) (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def run_job(client, footage: Path, args, load: bool, server_pid: int | None) -> dict:
    job_id = client.create_job(client.upload(str(footage)), {"stages": ["ingest", "flow"], "long_side": args.long_side,
                                                              "flow_gaps": [1, 2, 4, 8]})
    deadline = time.monotonic() + MAX_SECONDS
    while client.status(job_id)["stages"].get("flow", {}).get("status") != "running":
        if time.monotonic() > deadline or client.status(job_id)["state"] in ("failed", "cancelled"):
            raise SystemExit(f"the job never reached its flow stage: {client.status(job_id)}")
        time.sleep(0.05)
    result: dict = {"job": job_id}
    worker = None
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    jobs_cpu_before = cpu_seconds(server_pid, children=True) if server_pid else None
    if load:
        out = Path(tempfile.mkstemp(suffix=".json")[1])
        command = [sys.executable, __file__, "--poll-worker", client.url, client.token, job_id, str(args.clients),
                   str(args.duration), str(args.interval), str(out)]
        worker = subprocess.Popen(command, preexec_fn=(lambda: os.nice(args.client_nice)) if args.client_nice else None)
    while client.status(job_id)["state"] not in ("done", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SystemExit("the job did not finish in time")
        time.sleep(0.5)
    if worker is not None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker.wait(MAX_SECONDS)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["client_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
        result.update(json.loads(out.read_text()))
        out.unlink()
    if server_pid:
        result["server_cpu_s"] = cpu_seconds(server_pid) - cpu_before
    status = client.status(job_id)
    if server_pid:  # the run's CPU time is added to the server's children once the server has reaped it
        time.sleep(0.5)
        result["job_cpu_s"] = round(cpu_seconds(server_pid, children=True) - jobs_cpu_before, 2)
    result["flow_s"] = status["stages"]["flow"]["seconds"]
    result["state"] = status["state"]
    client.delete(job_id)
    return result


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--poll-worker"]:
        url, token, job_id, clients, duration, interval, out = argv[1:8]
        poll_worker(url, token, job_id, int(clients), float(duration), float(interval), out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between one client's polls (0: back to back)")
    parser.add_argument("--duration", type=float, default=60.0, help="longest the load runs, seconds (it stops when the job ends)")
    parser.add_argument("--repeats", type=int, default=2, help="baseline/loaded pairs")
    parser.add_argument("--frames", type=int, default=22, help="frames of the synthetic shot (22: about 30 s of flow on 2 cores)")
    parser.add_argument("--long-side", type=int, default=480)
    parser.add_argument("--client-nice", type=int, default=0, help="run the pollers at this niceness "
                        "(models clients on other machines; 0: same priority as the server)")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import importlib.util

    spec = importlib.util.spec_from_file_location("shotfield_remote", REPO / "blender_addon" / "remote.py")
    remote = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(remote)
    from tests.backend.conftest import textured_frames, write_video

    work = Path(tempfile.mkdtemp(prefix="shotfield-load-"))
    server = None
    try:
        if args.url:
            url, token = args.url, args.token
        else:
            server, url, token = start_server(work / "root")
        client = remote.ShotfieldServer(url, token, timeout=60)
        footage = write_video(work / "load.mp4", textured_frames(n=args.frames, width=args.long_side,
                                                                 height=args.long_side * 3 // 4, shift=(2.0, 1.0)))
        runs = {"baseline": [], "loaded": []}
        for i in range(args.repeats):
            for kind in ("baseline", "loaded"):
                result = run_job(client, footage, args, kind == "loaded", server.pid if server else None)
                runs[kind].append(result)
                print(f"{kind:8} run {i + 1}: flow {result['flow_s']:.2f} s"
                      + (f", job CPU {result['job_cpu_s']:.1f} s, server CPU {result['server_cpu_s']:.1f} s"
                         if "server_cpu_s" in result else "")
                      + (f", {len(result['latencies_ms'])} polls, {result['errors']} errors, pollers' CPU "
                         f"{result['client_cpu_s']:.1f} s" if kind == "loaded" else ""),
                      flush=True)
        latencies = [x for r in runs["loaded"] for x in r["latencies_ms"]]
        base = statistics.median(r["flow_s"] for r in runs["baseline"])
        loaded = statistics.median(r["flow_s"] for r in runs["loaded"])
        seconds = sum(r["seconds"] for r in runs["loaded"])
        summary = {
            "clients": args.clients, "interval_s": args.interval, "client_nice": args.client_nice,
            "polls": len(latencies), "errors": sum(r["errors"] for r in runs["loaded"]),
            "polls_per_s": round(len(latencies) / seconds, 1) if seconds else None,
            "p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies, default=float("nan")), 2),
            "baseline_flow_s": [r["flow_s"] for r in runs["baseline"]], "loaded_flow_s": [r["flow_s"] for r in runs["loaded"]],
            "slowdown_pct": round(100 * (loaded / base - 1), 1),
            "pair_slowdowns_pct": [round(100 * (l["flow_s"] / b["flow_s"] - 1), 1)
                                   for b, l in zip(runs["baseline"], runs["loaded"])],
            "job_cpu_s": {k: [r.get("job_cpu_s") for r in v] for k, v in runs.items()},
            "server_cpu_ms_per_poll": round(1000 * sum(r.get("server_cpu_s") or 0 for r in runs["loaded"])
                                            / max(1, len(latencies)), 3),
            "server_cpu_s": {k: [r.get("server_cpu_s") for r in v] for k, v in runs.items()},
            "pollers_cpu_s": [r["client_cpu_s"] for r in runs["loaded"]],
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        }
        print(json.dumps(summary, indent=2))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
