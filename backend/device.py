"""`--device auto|cpu|cuda`: which torch device a stage runs on. Torch is imported only when asked."""
from __future__ import annotations

from contextlib import contextmanager

from .errors import ShotfieldError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error, not a fallback,
    so a farm job asked to run on a GPU does not silently take hours on a CPU."""
    if requested not in DEVICES:
        raise ShotfieldError(f"--device {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise ShotfieldError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU here; use --device cpu or auto")
    return "cpu"


def describe_devices() -> str:
    """One line for `shotfield --version`: torch version and the device `auto` would pick."""
    try:
        import torch
    except ImportError as exc:  # the backend's environment is broken; say so rather than crash
        return f"torch not importable ({exc})"
    if torch.cuda.is_available():
        return f"torch {torch.__version__}, device cuda ({torch.cuda.get_device_name(0)})"
    return f"torch {torch.__version__}, device cpu ({torch.get_num_threads()} threads)"


@contextmanager
def one_cpu_thread(device: str):
    """Run the block on one torch intra-op thread when `device` is the CPU (the thread count comes back
    afterwards); on a GPU, as it is.

    The optimisations here work on small or thin tensors, where OpenMP's worker threads cost more than they
    give, and on a busy machine they spin and wait on each other. Measured on 2 cores: dense bundle adjustment
    3.5 s with one thread against 23 s with two under load (no gain from two when idle); depth training 3.4 s
    against 62 s of CPU for 20 steps; clean-plate rendering 0.46 s against 6.6 s a frame at a load of 13."""
    import torch

    if not str(device).startswith("cpu"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
