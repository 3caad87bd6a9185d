"""This machine's dense matmul peak, measured once and cached, and model FLOP utilization (MFU).

The peak is measured, not read from a datasheet: square matmuls (fp32 on CPU, which has no bf16 units here;
bf16 on CUDA), best of several, a few seconds at most. It is cached in ``paths.home()/peak_flops.json`` keyed
by device name (and thread count on CPU) and dtype. MFU against a measured matmul peak reads higher than MFU
against a datasheet peak (as papers report it): it says how much of what this machine's matmuls actually reach
the loop gets, which is the question when comparing two training loops. On the 2-core machine this was written
on, fp32 matmul peaked at ~110-175 GFLOP/s (noisy).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from tamperlab import paths

log = logging.getLogger(__name__)

CACHE_FILE = "peak_flops.json"


def _cache_path() -> Path:
    return paths.home() / CACHE_FILE


def _device_type(device: Any) -> str:
    return str(device).split(":")[0]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def peak_dtype_name(device: Any) -> str:
    """The dtype the peak is measured in: fp32 on CPU, bf16 on CUDA."""
    return "bfloat16" if _device_type(device) == "cuda" else "float32"


def device_key(device: Any) -> str:
    """A cache key naming the hardware and dtype a peak was measured on."""
    import torch

    if _device_type(device) == "cuda":
        index = torch.device(device).index
        name = torch.cuda.get_device_name(torch.cuda.current_device() if index is None else index)
    else:
        name = f"{_cpu_name()} x{torch.get_num_threads()} threads"
    return f"{name}|{peak_dtype_name(device)}"


def measure_peak_flops(device: Any = "cpu", budget_s: float = 2.5) -> float:
    """Best dense matmul FLOP/s on ``device`` (fp32 on CPU, bf16 on CUDA), in about ``budget_s`` seconds."""
    import torch

    device = torch.device(device)
    dtype = getattr(torch, peak_dtype_name(device))
    cuda = device.type == "cuda"
    sizes = (4096, 8192) if cuda else (1024, 2048)
    best = 0.0
    deadline = time.perf_counter() + budget_s
    for size in sizes:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        reps = 10 if cuda else 1
        torch.matmul(a, b)  # warm-up (thread pool, cuBLAS handle, kernel selection)
        if cuda:
            torch.cuda.synchronize(device)
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b)
            if cuda:
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            best = max(best, 2 * size**3 * reps / elapsed)
            if time.perf_counter() > deadline:
                break
        if time.perf_counter() > deadline:
            break
    return best


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def cached_peak_flops(device: Any = "cpu") -> float | None:
    """The cached peak for ``device``, or None when it has not been measured on this machine yet."""
    entry = _read_cache().get(device_key(device))
    return float(entry["flops"]) if isinstance(entry, dict) and "flops" in entry else None


def peak_flops(device: Any = "cpu", *, refresh: bool = False) -> float:
    """This machine's matmul peak FLOP/s on ``device``: cached, else measured (< 3 s) and cached.

    ``refresh=True`` measures again and keeps the higher of the new and the cached value: a peak is a maximum,
    and a low reading means other work was running (on a shared 2-core machine one read 54 GFLOP/s under
    load against 187 when idle).
    """
    cached = cached_peak_flops(device)
    if cached is not None and not refresh:
        return cached
    key = device_key(device)
    measured = measure_peak_flops(device)
    flops = max(measured, cached or 0.0)
    log.info("measured matmul peak on %s: %.3g FLOP/s (cached: %.3g)", key, measured, flops)
    if flops == cached:
        return flops
    data = _read_cache()
    data[key] = {"flops": flops, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError as exc:  # a read-only home still gets a peak, just not a cached one
        log.warning("could not cache the matmul peak in %s: %s", path, exc)
    return flops


def mfu(achieved_flops_per_s: float, peak: float | None) -> float | None:
    """Model FLOP utilization: achieved FLOP/s as a fraction of the peak.

    None when the peak is unknown, or lower than what was achieved: then the cached peak was read while other
    work ran (``peak_flops(refresh=True)`` measures it again), and a figure over 100% would be false.
    """
    if not peak or peak <= 0 or achieved_flops_per_s > peak:
        return None
    return achieved_flops_per_s / peak
