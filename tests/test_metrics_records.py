"""Provenance records and timing helpers."""
import json

import numpy as np
import pytest

import medsynth
from medsynth.errors import MedsynthError
from medsynth.metrics.provenance import MetricRecord, code_version
from medsynth.metrics.timing import measure_latency, peak_memory


def test_record_round_trip_carries_provenance(tmp_path):
    rec = MetricRecord(metric="kid", value=0.012, std=0.003, n=200, backbone="inception-random",
                       weights_sha256="ab" * 32, resize_mode="bilinear-299-in-model", seed=0,
                       definition="unbiased MMD^2, (x.y/d+1)^3, 100 subsets", extra={"subset_size": 200})
    assert rec.code_version.startswith(medsynth.__version__)
    assert rec.is_substitute_backbone
    rec.write(tmp_path / "kid.json")
    raw = json.loads((tmp_path / "kid.json").read_text())
    assert raw["value"] == 0.012 and raw["std"] == 0.003 and raw["weights_sha256"] == "ab" * 32
    assert MetricRecord.read(tmp_path / "kid.json") == rec
    assert code_version() == rec.code_version


def test_record_rejects_missing_values(tmp_path):
    with pytest.raises(MedsynthError, match="no numeric value"):
        MetricRecord(metric="fid", value=float("nan"), n=3)
    with pytest.raises(MedsynthError, match="0 items"):
        MetricRecord(metric="fid", value=1.0, n=0)
    (tmp_path / "x.json").write_text('{"nope": 1}')
    with pytest.raises(MedsynthError, match="not a metric record"):
        MetricRecord.read(tmp_path / "x.json")


def test_latency_and_peak_memory_measure_real_work():
    calls = []
    lat = measure_latency(lambda: calls.append(sum(range(20000))), images_per_call=4, warmup=2, repeats=3)
    assert len(calls) == 5
    assert lat["seconds_per_image"] == pytest.approx(lat["seconds_per_call"] / 4)
    assert lat["seconds_per_call"] > 0
    import gc

    gc.collect()  # earlier tests' garbage freed mid-measurement would lower the RSS the peak is measured against
    with peak_memory(tracker="rss") as mem:
        block = np.ones(256 * 2 ** 20 // 8)  # 256 MiB, touched (large against RSS noise from other frees)
        block.sum()
    del block
    assert mem["peak_bytes"] >= 192 * 2 ** 20 and "RSS" in mem["method"], mem


def test_cpu_peak_memory_counts_torch_tensors_after_warmup():
    import torch

    def work():
        a = torch.ones(1024, 1024)        # 4 MiB
        b = torch.ones(2048, 1024)        # 8 MiB, both live: peak 12 MiB
        total = a.sum() + b.sum()
        del a, b
        torch.ones(512, 1024)             # 2 MiB after the frees: not a new peak
        return total

    work()  # warm-up: RSS would not grow again for the same allocations
    with peak_memory() as mem:
        work()
    assert 12 * 2 ** 20 <= mem["peak_bytes"] < 13 * 2 ** 20, mem
    assert "torch.profiler" in mem["method"]
    with pytest.raises(MedsynthError):
        with peak_memory(tracker="heap"):
            pass


def test_cpu_peak_memory_logs_no_gpu_error():
    """The CPU memory profile of a CUDA build of torch on a machine without a GPU must not print kineto's
    'ERROR ... gpuGetDeviceCount failed' into the job's log (it reads as a failed run)."""
    import os
    import subprocess
    import sys

    code = ("import torch\nfrom medsynth.metrics.timing import peak_memory\n"
            "with peak_memory('cpu') as mem:\n    x = torch.ones(1000) * 2\nprint(mem['peak_bytes'] > 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"})
    assert run.stdout.strip() == "True"
    assert "gpuGetDeviceCount" not in run.stderr and "ERROR" not in run.stderr
