"""The demo's time budget, measured: sums a finished run's Snakemake benchmark files per paper and per rule
(medsynth.report.profile) and the disk under results/, and checks them against the budget (issue: all five papers
in <= 30 min wall on 2 cores, <= 2 GB under results/).

    python bench/demo_profile.py [--results results] [--elapsed-min 28.5]   # writes bench/out/demo_profile.json

Job times are summed, so on 2 cores the elapsed time is roughly total / 2 when jobs overlap; pass --elapsed-min
(the wall time `make demo` printed) to check the budget itself. Without a results folder it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from medsynth.report.profile import disk_usage, machine_speed, read_benchmarks, summarise  # noqa: E402

BUDGET_MIN, BUDGET_GB = 30.0, 2.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--elapsed-min", type=float, default=None, help="measured wall time of the whole demo")
    ap.add_argument("--no-calibrate", action="store_true", help="skip timing this machine (machine_speed)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "demo_profile.json"))
    args = ap.parse_args(argv)
    jobs = read_benchmarks(args.results)
    if jobs.empty:
        print(f"no benchmark files under {args.results}/benchmarks: run `make demo` first")
        return 0
    summary = summarise(jobs)
    disk = disk_usage(args.results)
    summary["disk_bytes"] = disk
    summary["disk_gb"] = round(sum(disk.values()) / 1e9, 2)
    summary["budget"] = {"elapsed_min": args.elapsed_min, "elapsed_budget_min": BUDGET_MIN,
                         "disk_budget_gb": BUDGET_GB, "disk_ok": summary["disk_gb"] <= BUDGET_GB,
                         "elapsed_ok": None if args.elapsed_min is None else args.elapsed_min <= BUDGET_MIN}
    # Run this on the machine (and idle, as in the run) that made the results: it is the profile's yardstick.
    summary["machine"] = None if args.no_calibrate else machine_speed()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"{summary['jobs']} jobs, {summary['total_job_wall_s'] / 60:.1f} job-minutes, {summary['disk_gb']} GB")
    if summary["machine"]:
        m = summary["machine"]
        print(f"machine: {m['cpu']} ({m['logical_cpus']} CPUs, torch {m['torch_cpu_capability']}), "
              f"calibration {m['torch_conv_s']} s ({m['torch_conv_workload']})")
    print("per paper (job-minutes):")
    for r in summary["per_paper"]:
        print(f"  {r['paper']:<14} {r['jobs']:>4} jobs  {r['wall_s'] / 60:7.1f} min  peak {r['max_rss_mb']:.0f} MB")
    print("top rules (job-minutes):")
    for r in summary["per_rule"][:15]:
        print(f"  {r['paper']:<14} {r['rule']:<32} {r['jobs']:>4}  {r['wall_s'] / 60:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
