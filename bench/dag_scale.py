"""DAG scale: does a dry run for a MIMIC-CXR-sized dataset plan a few hundred jobs, in under a minute?

What it measures: the wall time of `snakemake -n all` (DAG build + job planning, no job runs) for one dataset with
the mimic_cxr adapter whose raw manifest already exists with 377,110 rows (the size of MIMIC-CXR-JPG). The ingest
checkpoint's output being present, Snakemake plans preprocess_shard jobs from the manifest's row count (Parquet
metadata), so the DAG holds ceil(rows / shard_size) shard jobs, not one job per image. The manifest is generated
(pseudonymous ids, plausible paths and views); the dataset root is an empty folder, as nothing is read from it.

Run: python bench/dag_scale.py [--rows 377110] [--shard-size 1000] [--out bench/out/dag_scale.json] [--no-clahe]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
DATASET = "mimic_cxr"
TIME_LIMIT_S = 60.0


def generated_manifest(n: int, seed: int = 0) -> pd.DataFrame:
    """A raw manifest shaped like the mimic_cxr adapter's: about 1.7 images per study, 3 studies per patient."""
    from medsynth.manifest import REQUIRED_COLUMNS, finalize

    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    patient = idx // 5
    study = idx // 2
    views = np.array(["PA", "AP", "LATERAL", "LL"])[rng.choice(4, size=n, p=[0.45, 0.3, 0.2, 0.05])]
    df = pd.DataFrame({
        "id": [f"{i:016x}" for i in rng.permutation(n).astype(np.int64) * 2654435761 % (1 << 62)],
        "patient_id": [f"{p:012x}" for p in patient * 40503 % (1 << 46)],
        "split": np.array(["train", "val", "test"])[rng.choice(3, size=n, p=[0.8, 0.1, 0.1])],
        "source": [f"files/p1{p % 10}/p1{p:07d}/s5{s:07d}/{i:08d}.dcm" for i, p, s in zip(idx, patient, study)],
        "view": views,
        "findings": "The lungs are clear. No pleural effusion or pneumothorax.",
        "impression": "No acute cardiopulmonary process.",
        "prompt": "No acute cardiopulmonary process.",
    })
    df = finalize(df)
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == REQUIRED_COLUMNS
    return df


def write_config(work: Path, shard_size: int, clahe: bool) -> Path:
    root = work / "mimic_root"
    root.mkdir()
    config = {
        "results": str(work / "results"),
        "seed": 0,
        "pseudonym": {"key_env": "MEDSYNTH_PSEUDONYM_KEY", "key": "bench-dag-scale"},
        "datasets": {DATASET: {
            "adapter": "mimic_cxr", "root": str(root), "shard_size": shard_size,
            # As a real MIMIC config would: CLAHE on, so `all` also plans the before/after figure.
            "preprocess": {"image_size": 256, "resize": "pad", "clahe": {"enabled": clahe}},
        }},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: count, ..., 'total': n}."""
    counts, in_table = {}, False
    for line in stdout.splitlines():
        if line.strip().startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif counts and not set(line.strip()) <= {"-", ""}:
                break
    return counts


def run(rows: int, shard_size: int, out: Path, clahe: bool = True) -> dict:
    with tempfile.TemporaryDirectory(prefix="medsynth-dag-") as tmp:
        work = Path(tmp)
        cfg = write_config(work, shard_size, clahe)
        t0 = time.perf_counter()
        manifest = work / "results" / "manifests" / f"{DATASET}.parquet"
        manifest.parent.mkdir(parents=True)
        generated_manifest(rows).to_parquet(manifest, index=False)
        os.utime(manifest)  # newer than anything it could depend on, so the checkpoint counts as done
        gen_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(work), "--configfile", str(cfg), "--cores", "1", "all"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            # Overwrite any earlier result, so a stale "passed" never outlives a failing run.
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"benchmark": "dag_scale", "rows": rows, "passed": False,
                                       "error": tail.splitlines()[-1] if tail else ""}, indent=2) + "\n")
            raise SystemExit(f"snakemake -n failed (exit {proc.returncode}):\n{tail}")
        counts = job_counts(proc.stdout + "\n" + proc.stderr)
    expected = math.ceil(rows / shard_size)
    result = {
        "benchmark": "dag_scale",
        "rows": rows,
        "shard_size": shard_size,
        "clahe_figure_planned": clahe,
        "expected_preprocess_shard_jobs": expected,
        "job_counts": counts,
        "dry_run_wall_s": round(wall, 2),
        "manifest_generation_s": round(gen_s, 2),
        "time_limit_s": TIME_LIMIT_S,
        "passed": counts.get("preprocess_shard") == expected and wall < TIME_LIMIT_S,
        "command": "snakemake -n --snakefile <repo>/Snakefile --directory <tmp> all --configfile <tmp>/config.yaml",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=377_110, help="manifest rows (MIMIC-CXR-JPG: 377,110 images)")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "dag_scale.json")
    ap.add_argument("--no-clahe", action="store_true",
                    help="plan without the CLAHE figure (e.g. while scripts/plot_clahe.py does not exist yet)")
    args = ap.parse_args(argv)
    res = run(args.rows, args.shard_size, args.out, clahe=not args.no_clahe)
    print(json.dumps({k: res[k] for k in ("rows", "job_counts", "dry_run_wall_s", "passed")}, indent=2))
    if res["job_counts"].get("preprocess_shard") != res["expected_preprocess_shard_jobs"]:
        print(f"FAIL: expected {res['expected_preprocess_shard_jobs']} preprocess_shard jobs", file=sys.stderr)
        return 1
    if res["dry_run_wall_s"] >= TIME_LIMIT_S:
        print(f"FAIL: dry run took {res['dry_run_wall_s']} s (limit {TIME_LIMIT_S} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
