"""A stand-in for `shotfield run` with the same contract on the job folder and the same process behaviour:
holds an exclusive flock on JOB/.job.lock with its PID in it, appends progress.jsonl, keeps job.json's
stages, and on SIGTERM/SIGINT marks the running stage cancelled and exits 143/130. Quick and predictable,
for the tests of process handling; the end-to-end tests use the real backend.

    fake_backend.py run [FOOTAGE] --job DIR [other `shotfield run` options, ignored]
    fake_backend.py --version

Behaviour from the environment: FAKE_STAGES (default "ingest,flow"), FAKE_SECONDS per stage (default 0.3),
FAKE_EXIT (exit code after the last stage, default 0; 1 marks the last stage failed), FAKE_STARTUP seconds
before taking the lock (default 0).
"""
import fcntl
import json
import os
import signal
import sys
import time

if "--version" in sys.argv:
    print("shotfield 0.0-fake (torch none, device cpu (fake))")
    sys.exit(0)

job = sys.argv[sys.argv.index("--job") + 1]
stages = os.environ.get("FAKE_STAGES", "ingest,flow").split(",")
seconds = float(os.environ.get("FAKE_SECONDS", "0.3"))
exit_code = int(os.environ.get("FAKE_EXIT", "0"))
time.sleep(float(os.environ.get("FAKE_STARTUP", "0")))
os.makedirs(job, exist_ok=True)
lock = os.open(os.path.join(job, ".job.lock"), os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print(f"shotfield: the job {job} is being run by process {os.pread(lock, 64, 0).decode()}; wait for it or cancel it",
          file=sys.stderr)
    sys.exit(1)
os.ftruncate(lock, 0)
os.pwrite(lock, str(os.getpid()).encode(), 0)
manifest_path = os.path.join(job, "job.json")
manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {
    "format": "shotfield-job", "version": 1, "frames": {"start": 0, "end": None, "step": 1, "count": 4}, "fps": 24.0,
    "working_size": [64, 48], "source_size": [64, 48], "stages": {}, "outputs": {}}
current = {"stage": None}


def save():
    tmp = manifest_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f)
    os.replace(tmp, manifest_path)


def progress(stage, fraction, message):
    with open(os.path.join(job, "progress.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.time(), "stage": stage, "fraction": fraction, "message": message}) + "\n")


def record(stage, status, error=None):
    manifest["stages"][stage] = {"status": status, "seconds": seconds, "device": "cpu", "error": error, "key": "k",
                                 "started": None, "finished": None}
    save()


def on_signal(signum, _frame):
    name = signal.Signals(signum).name
    if current["stage"]:
        record(current["stage"], "cancelled", f"cancelled by {name}")
        progress(current["stage"], 0.0, f"cancelled by {name}")
    sys.exit(143 if signum == signal.SIGTERM else 130)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
with open(os.path.join(job, "log.txt"), "a") as log:
    log.write(f"fake backend {os.getpid()} started\n")
for n, stage in enumerate(stages):
    if manifest["stages"].get(stage, {}).get("status") == "done":
        progress(stage, 1.0, "up to date, skipped")
        continue
    current["stage"] = stage
    record(stage, "running")
    progress(stage, 0.0, "started")
    for step in range(1, 5):
        time.sleep(seconds / 4)
        progress(stage, step / 4 * 0.99, f"step {step}/4")
    if exit_code == 1 and n == len(stages) - 1:
        record(stage, "failed", "the fake stage failed on purpose")
        progress(stage, 0.0, "failed: the fake stage failed on purpose")
        print(f"shotfield: stage {stage}: the fake stage failed on purpose", file=sys.stderr)
        sys.exit(1)
    record(stage, "done")
    progress(stage, 1.0, f"done in {seconds:.1f} s")
    current["stage"] = None
if exit_code not in (0, 1):
    print(f"shotfield: fake exit {exit_code}", file=sys.stderr)
sys.exit(exit_code if exit_code != 1 else 0)
