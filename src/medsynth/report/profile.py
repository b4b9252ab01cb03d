"""Where a run's time went: Snakemake's per-job benchmark files (results/benchmarks/<rule>/<wildcards>.tsv) summed
per paper and per rule, and the disk each results folder takes. Feeds bench/demo_profile.py and the demo budget.

A job belongs to a paper when its rule or one of its wildcard values (a model entry, a page) starts with the paper's
id (model entries are named after the paper that trains them); everything else (phantom, ingest, preprocessing,
the classifier, the index) is `shared`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPERS = ("chambon2022", "chen2024", "choksi2025", "siddiqui2023", "xing2024")


def paper_of(rule: str, wildcards: str, papers=PAPERS) -> str:
    for part in [rule, *Path(wildcards).parts]:
        for p in papers:
            if part.startswith(p):
                return p
    return "shared"


def read_benchmarks(results: str | Path, papers=PAPERS) -> pd.DataFrame:
    """One row per finished job: rule, wildcards, paper, wall seconds, CPU seconds, peak RSS (MB)."""
    root = Path(results) / "benchmarks"
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        rule = tsv.relative_to(root).parts[0]
        wildcards = str(tsv.relative_to(root / rule).with_suffix(""))
        try:
            bench = pd.read_csv(tsv, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue  # a job that died before Snakemake wrote its benchmark
        if bench.empty or "s" not in bench:
            continue
        rows.append({"rule": rule, "wildcards": wildcards, "paper": paper_of(rule, wildcards, papers),
                     "wall_s": float(bench["s"].iloc[0]), "cpu_s": float(bench.get("cpu_time", pd.Series([0])).iloc[0]),
                     "max_rss_mb": float(bench.get("max_rss", pd.Series([0])).iloc[0] or 0)})
    return pd.DataFrame(rows, columns=["rule", "wildcards", "paper", "wall_s", "cpu_s", "max_rss_mb"])


def summarise(jobs: pd.DataFrame) -> dict:
    """Per paper and per (paper, rule): jobs, wall and CPU seconds (sums of job times, not elapsed time: jobs run
    in parallel), largest peak RSS."""
    agg = dict(jobs=("rule", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    per_paper = jobs.groupby("paper").agg(**agg).sort_values("wall_s", ascending=False)
    per_rule = jobs.groupby(["paper", "rule"]).agg(**agg).sort_values("wall_s", ascending=False)
    return {"total_job_wall_s": float(jobs["wall_s"].sum()), "jobs": int(len(jobs)),
            "per_paper": per_paper.round(1).reset_index().to_dict("records"),
            "per_rule": per_rule.round(1).reset_index().to_dict("records")}


def disk_usage(results: str | Path) -> dict[str, int]:
    """Bytes under each top-level folder of results/ (symlinks not followed; a hard-linked file, e.g. a weight file
    an adapted model shares with its base, counted once, as `du` does)."""
    out, seen = {}, set()
    for d in sorted(Path(results).iterdir()) if Path(results).is_dir() else []:
        if d.is_dir():
            total = 0
            for f in d.rglob("*"):
                if f.is_file() and not f.is_symlink():
                    st = f.stat()
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
            out[d.name] = total
    return out


def machine_speed(steps: int = 10, seed: int = 0) -> dict:
    """The CPU a profile was measured on, and its speed on a fixed single-thread workload like the demo's jobs
    (a small conv net's training steps: torch's CPU convolution speed differs between machines more than numpy's).
    Demo budgets measured on different machines compare only through this: their job-minutes scale with
    `torch_conv_s`."""
    import os
    import platform
    import time

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                  torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                  torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten(), torch.nn.Linear(64, 1))
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        x = torch.rand(16, 1, 128, 128, generator=gen)
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            net(x).mean().backward()
            opt.step()
        conv_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return {"cpu": cpu, "logical_cpus": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "torch_conv_s": round(conv_s, 2),
            "torch_conv_workload": f"{steps} training steps, batch 16 x 128 px, 3-conv net, 1 thread"}
