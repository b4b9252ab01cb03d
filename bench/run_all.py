"""Run every CPU benchmark in bench/ (each compares against its reference tool in the same run) and print a
summary of the JSON results they write to bench/out/. GPU-only benchmarks are skipped without a GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_ONLY = {"gpu_unet_throughput.py"}


def main() -> int:
    import torch

    failed = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or (script.name in GPU_ONLY and not torch.cuda.is_available()):
            continue
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        if proc.returncode:
            failed.append(script.name)
    for result in sorted((HERE / "out").glob("*.json")):
        print(f"-- {result.name}: {json.dumps(json.loads(result.read_text()))[:400]}")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
