"""Generation performance (choksi2025: latency for 20 / 100 DDIM steps, peak memory): measured, never hard-coded.

Latency: wall-clock per call after warm-up calls, CUDA synchronised around each call when a GPU is used.
Peak memory: on CUDA, torch's peak allocated bytes since a reset (what the model and activations use); on CPU, the
peak of live torch tensor bytes allocated during the call, from torch.profiler's memory events (the CPU analogue of
the CUDA number). `tracker="rss"` instead samples the process's resident set size every few ms minus the RSS at the
start — for non-torch work; after warm-up calls glibc keeps freed blocks, so RSS growth under-counts torch's peak.
"""
from __future__ import annotations

import os

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from ..errors import MedsynthError


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def measure_latency(fn: Callable[[], object], images_per_call: int = 1, warmup: int = 1, repeats: int = 5,
                    device: str = "cpu") -> dict:
    """Seconds per call and per image: mean and std over `repeats` timed calls."""
    if repeats < 1 or images_per_call < 1:
        raise MedsynthError("repeats and images_per_call must be >= 1")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    arr = np.asarray(times)
    return {"seconds_per_call": float(arr.mean()), "seconds_per_call_std": float(arr.std()),
            "seconds_per_image": float(arr.mean() / images_per_call), "repeats": repeats, "warmup": warmup,
            "images_per_call": images_per_call, "device": device}


class _RssSampler(threading.Thread):
    def __init__(self, interval: float):
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak = self._proc.memory_info().rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        return self.peak


@contextmanager
def peak_memory(device: str = "cpu", interval: float = 0.005, tracker: str = "torch") -> Iterator[dict]:
    """`with peak_memory(dev) as mem: ...` then mem["peak_bytes"] holds the peak above the starting point."""
    result: dict = {"device": device}
    if not device.startswith("cuda") and tracker == "torch":
        from torch.profiler import ProfilerActivity, profile

        # a CUDA build of torch on a machine without a GPU: kineto logs "ERROR ... gpuGetDeviceCount failed" for a
        # CPU-only profile, which reads like a failure of the run (a user's own setting wins)
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            yield result
        # allocations are attributed to the op that made them (self bytes), frees to '[memory]' events; the running
        # sum in time order is the live tensor bytes, its maximum the peak (at op granularity)
        deltas = []
        for e in prof.events():
            d = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
            if d:
                deltas.append((e.time_range.start, d))
        live = peak = 0
        for _, d in sorted(deltas):
            live += d
            peak = max(peak, live)
        result.update(peak_bytes=int(peak), method="torch.profiler memory events: peak of live torch tensor bytes "
                                                   "allocated during the call (CPU)")
        return
    if tracker not in ("torch", "rss"):
        raise MedsynthError(f"unknown memory tracker {tracker!r} (torch | rss)")
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        try:
            yield result
        finally:
            torch.cuda.synchronize(device)
            result.update(peak_bytes=int(torch.cuda.max_memory_allocated(device) - base),
                          method="torch.cuda.max_memory_allocated minus allocated at start")
        return
    sampler = _RssSampler(interval)
    base = sampler.peak
    sampler.start()
    try:
        yield result
    finally:
        peak = sampler.stop()
        result.update(peak_bytes=int(max(peak - base, 0)),
                      method=f"process RSS sampled every {interval * 1000:.0f} ms minus RSS at start")
