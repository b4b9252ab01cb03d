"""profiles/slurm against a real single-node SLURM cluster, and the two profiles' settings.

The cluster tests (marker `slurm`; skipped with the reason where a cluster cannot be started: not root, no
apt-get, or a real SLURM config in /etc/slurm) start munged + slurmctld + slurmd (tests/slurm_cluster.py, installing
Debian's packages when missing) on a node that declares fake A100s, and stop them when the module is done. They
 - submit each GPU rule's sbatch line, as the plugin builds it from the profile, with --test-only;
 - run config/slurm_test.yaml's targets (phantom -> two image datasets' sharded preprocessing -> a short VAE
   stage, a GPU rule) through `--profile profiles/slurm`, crash one preprocessing job (SIGKILL to all its
   processes, as a dying node) and scancel the VAE job between two checkpoints, and require: every job ran as a
   SLURM job (ids, states and requests are printed), both killed jobs were retried, the half-written shard was
   deleted, the VAE resumed from its checkpoint, and the outputs equal those of a plain local run.
Where the machine qualifies but apt-get fails, the tests error; `pytest -m "not slurm"` leaves them out.
The other tests read the profiles and build the plugin's sbatch command lines; they need no cluster.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from tests import slurm_cluster
from tests.conftest import REPO

PROFILE = REPO / "profiles" / "slurm"
TEST_CONFIG = REPO / "config" / "slurm_test.yaml"
# config/slurm_test.yaml over config/ci.yaml: phantom, two image datasets' preprocessing and a short VAE stage
TARGETS = ["results/data/phantom_cxr/summary.json", "results/data/v7labs_lung_masks/summary.json",
           "results/models/choksi2025/vae_train.json"]
VAE_STEPS = 12  # models.choksi2025.vae.train.max_steps in config/slurm_test.yaml
SITE_ENV = ("MEDSYNTH_SLURM_ACCOUNT", "MEDSYNTH_SLURM_PARTITION", "MEDSYNTH_SLURM_GPU_PARTITION",
            "MEDSYNTH_SLURM_GPU_MODEL", "MEDSYNTH_SLURM_STATUS_COMMAND")


# ----- the profiles, read as Snakemake reads them ----------------------------------------------------------------

def read_profile(path: Path, monkeypatch, **env) -> dict:
    from snakemake.profiles import ProfileConfigFileParser

    for name in SITE_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with open(path / "config.yaml") as f:
        return dict(ProfileConfigFileParser().parse(f))


def _value(text: str):
    # Snakemake evaluates resource values as Python and keeps a bare word (NameError) as a string
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def rule_resources(profile: dict, rule: str) -> dict:
    """default-resources overlaid with the rule's set-resources entries, values evaluated."""
    res = dict(item.split("=", 1) for item in profile.get("default-resources", []))
    for item in profile.get("set-resources", []):
        name, assignment = item.split(":", 1)
        if name == rule:
            key, value = assignment.split("=", 1)
            res[key] = value
    return {k: _value(v) for k, v in res.items()}


def gpu_rules(profile: dict) -> set[str]:
    return {item.split(":", 1)[0] for item in profile.get("set-resources", []) if item.split(":", 1)[1].startswith("gpu=")}


def test_slurm_profile_settings(monkeypatch):
    p = read_profile(PROFILE, monkeypatch)
    assert p["executor"] == "slurm"
    assert int(p["retries"]) >= 1 and int(p["latency-wait"]) >= 30
    assert int(p["jobs"]) > 1 and p["max-jobs-per-timespan"]
    assert p["rerun-incomplete"] == "True"
    assert p["slurm-logdir"].startswith("results/logs/")  # logs land in the run folder, next to the rule logs
    assert p["slurm-no-account"] == "True"  # no account configured: never let the plugin guess one
    assert "slurm-status-command" not in p  # the plugin's own choice unless the site sets one
    cpu = rule_resources(p, "preprocess_shard")
    assert cpu["runtime"] > 0 and cpu["mem_mb"] > 0
    assert not {"gpu", "gpu_model", "gres", "cpus_per_gpu"} & set(cpu)
    assert gpu_rules(p), "the profile names no GPU rule"
    for rule in gpu_rules(p):
        res = rule_resources(p, rule)
        assert res["gpu"] >= 1 and res["gpu_model"] == "a100" and res["cpus_per_gpu"] >= 1, rule


def test_site_settings_come_from_one_place(monkeypatch):
    p = read_profile(PROFILE, monkeypatch, MEDSYNTH_SLURM_ACCOUNT="lab42", MEDSYNTH_SLURM_PARTITION="all",
                     MEDSYNTH_SLURM_GPU_PARTITION="gpu-a100", MEDSYNTH_SLURM_GPU_MODEL="h100",
                     MEDSYNTH_SLURM_STATUS_COMMAND="squeue")
    assert "slurm-no-account" not in p and p["slurm-status-command"] == "squeue"
    cpu = rule_resources(p, "merge_dataset")
    # 'all' stays the partition's name, not Python's builtin all()
    assert cpu["slurm_partition"] == "all" and cpu["slurm_account"] == "lab42"
    for rule in gpu_rules(p):
        res = rule_resources(p, rule)
        assert res["slurm_partition"] == "gpu-a100" and res["gpu_model"] == "h100" and res["slurm_account"] == "lab42"


def test_gpu_model_none_runs_gpu_rules_without_gpus(monkeypatch):
    p = read_profile(PROFILE, monkeypatch, MEDSYNTH_SLURM_GPU_MODEL="none")
    assert gpu_rules(p)
    for rule in gpu_rules(p):
        res = rule_resources(p, rule)
        assert res["gpu"] == 0 and "gpu_model" not in res and "cpus_per_gpu" not in res


class FakeResources(dict):
    __getattr__ = dict.__getitem__


def sbatch_line(res: dict, threads: int = 1) -> str:
    """The plugin's own sbatch command line for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=FakeResources(res), threads=threads)
    settings = SimpleNamespace(requeue=False, no_requeue=False, qos=None, reservation=None)
    params = {"run_uuid": "run", "slurm_logfile": "x/%j.log", "comment_str": "rule_x", "account": "",
              "partition": f"-p {res['slurm_partition']}" if "slurm_partition" in res else "", "workdir": "/w"}
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def test_sbatch_lines_for_gpu_and_cpu_rules(monkeypatch):
    p = read_profile(PROFILE, monkeypatch, MEDSYNTH_SLURM_PARTITION="cpu", MEDSYNTH_SLURM_GPU_PARTITION="gpu")
    multi = max(gpu_rules(p), key=lambda r: rule_resources(p, r)["gpu"])
    res = rule_resources(p, multi)
    line = sbatch_line(res)
    # one task holding n A100s; accelerate launch then starts one process per GPU inside it
    assert f"--gpus=a100:{res['gpu']}" in line and f"--cpus-per-gpu={res['cpus_per_gpu']}" in line
    assert "-p gpu" in line and "--ntasks-per-gpu" not in line and f"--mem {res['mem_mb']}" in line
    cpu_line = sbatch_line(rule_resources(p, "preprocess_shard"))
    assert "--gpus" not in cpu_line and "--gres" not in cpu_line
    assert "-p cpu" in cpu_line and "--ntasks=1" in cpu_line and "--cpus-per-task=1" in cpu_line
    assert "-t 60" in cpu_line and "--mem 4000" in cpu_line


def test_profile_gpu_rules_are_the_rules_that_declare_gpus(monkeypatch):
    declared = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=(?:rule|checkpoint) )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"(?:rule|checkpoint) (\w+)", block).group(1)
            if re.search(r"^\s+gpu\s*=", block, flags=re.M):
                declared.add(name)
    assert {"train_vae", "train_diffusion", "sample_images"} <= declared  # the parser sees the engine's rules
    in_profile = gpu_rules(read_profile(PROFILE, monkeypatch))
    missing, stale = declared - in_profile, in_profile - declared
    assert not missing, f"GPU rules missing from GPU_RULES in profiles/slurm/config.yaml: {sorted(missing)}"
    assert not stale, f"GPU_RULES in profiles/slurm/config.yaml names rules that declare no gpu=: {sorted(stale)}"


def test_local_profile(monkeypatch):
    p = read_profile(REPO / "profiles" / "local", monkeypatch)
    assert "executor" not in p
    assert int(p["cores"]) >= 1 and p["printshellcmds"] == "True" and p["rerun-incomplete"] == "True"
    assert p["keep-going"] == "False"


# ----- the cluster helper, without a cluster ---------------------------------------------------------------------

def test_cluster_unavailable_reasons(monkeypatch):
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)
    assert "needs root" in slurm_cluster.unavailable_reason()
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster, "missing_binaries", lambda: ["slurmctld"])
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda name: None)
    assert "no apt-get" in slurm_cluster.unavailable_reason()


def test_install_runs_apt_get_without_starting_services(tmp_path, monkeypatch):
    """install() calls apt-get update + install --no-install-recommends with a policy-rc.d that refuses service
    starts in place, and removes that policy-rc.d afterwards (a fake apt-get records what it saw)."""
    bin_dir, record, policy = tmp_path / "bin", tmp_path / "calls.txt", tmp_path / "policy-rc.d"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$* | policy: $({policy} >/dev/null 2>&1; echo $?)" >> {record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(slurm_cluster, "POLICY_RC_D", policy)
    missing = iter([["slurmd"], []])  # missing before the install, present after it
    monkeypatch.setattr(slurm_cluster, "missing_binaries", lambda: next(missing))
    slurm_cluster.install()
    calls = record.read_text().splitlines()
    assert calls == ["update -qq | policy: 101",
                     "install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge | policy: 101"]
    assert not policy.exists()


# ----- the real cluster ------------------------------------------------------------------------------------------

def _gpu_node_size() -> dict:
    """The biggest GPU job of the profile (GPUs, CPUs, memory): the test node is declared to fit it."""
    with pytest.MonkeyPatch.context() as mp:
        p = read_profile(PROFILE, mp)
    res = [rule_resources(p, r) for r in gpu_rules(p)]
    return {"gpus": max(r["gpu"] for r in res), "cpus": max(r["gpu"] * r["cpus_per_gpu"] for r in res),
            "memory_mb": max(r["mem_mb"] for r in res), "gpu_type": res[0]["gpu_model"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A single-node cluster for this module: installed if missing, started here, stopped (all three daemons,
    and every job still queued) when the module's tests are done, so no test run leaves daemons behind."""
    reason = slurm_cluster.unavailable_reason()
    if reason:
        pytest.skip(reason)
    # root with apt-get but no way to install (no mirror reachable) is an error, not a skip: CI must not pass
    # silently without the cluster test. Deselect it there with `pytest -m "not slurm"`.
    slurm_cluster.install()
    size = _gpu_node_size()
    c = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"), fake_gpus=size["gpus"], gpu_type=size["gpu_type"])
    c.write_config(min_cpus=size["cpus"], min_memory_mb=size["memory_mb"])
    try:
        c.start()
        yield c
    finally:
        c.stop()


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    configs = [str(REPO / "config.yaml"), str(REPO / "config" / "ci.yaml"), str(TEST_CONFIG)]
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", *configs, *extra, *TARGETS]


def finished_rules(log: str) -> Counter:
    return Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log))


@pytest.mark.slurm
def test_every_gpu_rule_request_is_schedulable(cluster, tmp_path, monkeypatch):
    """slurmctld accepts each GPU rule's sbatch line (built by the plugin from the profile) on an A100 node."""
    p = read_profile(PROFILE, monkeypatch, MEDSYNTH_SLURM_PARTITION=slurm_cluster.PARTITION)
    for rule in sorted(gpu_rules(p)):
        line = sbatch_line(rule_resources(p, rule), threads=2).replace("-D /w", f"-D {tmp_path}")
        done = subprocess.run(f"{line} --test-only --wrap true", shell=True, env=cluster.env, capture_output=True,
                              text=True, timeout=30)
        # --test-only validates the request against the partition and node and says when it would start
        assert done.returncode == 0 and "to start at" in done.stderr, f"{rule}: {line}\n{done.stderr}"
        print(f"{rule}: {line.split(' -t ')[-1]} -> {done.stderr.strip()}")


# The killer thread: one job of each kind is killed half-way, the two ways a cluster kills jobs.
@dataclass
class Kill:
    rule: str
    how: str               # crash: every process SIGKILLed at once; scancel: SIGTERM, SIGKILL after KillWait
    story: str
    evidence: dict = field(default_factory=dict)
    job: dict = field(default_factory=dict)


KILLS = (
    # a node dying under a job: nothing inside the job can clean up, the shard folder stays half-written on
    # disk, and Snakemake on the login node must delete it before the retry (never take it as done)
    Kill("preprocess_shard", "crash", "a node crash (SIGKILL to all its processes at once)"),
    # a time limit, preemption or an admin: scancel; the retry must resume from the checkpoint left behind
    Kill("train_vae", "scancel", "scancel"),
)


def _caught_half_way(kill: Kill, wildcards: str, workdir: Path) -> dict | None:
    """Evidence that the job is half-way (output partly written), or None."""
    r = workdir / "results"
    if kill.rule == "preprocess_shard":
        dataset, shard = re.fullmatch(r"(\w+)_(\d{5})", wildcards).groups()
        folder = r / "preprocessed" / dataset / "shards" / shard
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) \
            if folder.is_dir() else []
        if written and not (folder / "manifest.parquet").exists():  # some images written, the manifest not yet
            return {"folder": folder, "written": written}
    if kill.rule == "train_vae":
        ckpts = r / "models" / wildcards / "work" / "vae" / "checkpoints"
        done = sorted(ckpts.glob("step-*")) if ckpts.is_dir() else []  # complete ones (written by atomic rename)
        final = f"step-{VAE_STEPS:06d}"
        if done and final not in {c.name for c in done} and not (r / "models" / wildcards / "vae_train.json").exists():
            return {"step": int(done[-1].name.split("-")[1])}
    return None


def killer(cluster: slurm_cluster.Cluster, workdir: Path, stop: threading.Event, kills: tuple[Kill, ...]) -> None:
    running: list[tuple[Kill, dict, str]] = []
    last_query = 0.0
    while not stop.is_set() and not all(k.job for k in kills):
        if time.monotonic() - last_query > 0.5:
            last_query = time.monotonic()
            running = []
            try:
                jobs = cluster.jobs()
            except subprocess.CalledProcessError:  # slurmctld busy for a moment: ask again
                jobs = []
            for job in jobs:
                for kill in kills:
                    m = re.fullmatch(rf"rule_{kill.rule}_wildcards_(\w+)", job["comment"])
                    if m and job["state"] == "RUNNING" and not kill.job:
                        running.append((kill, job, m.group(1)))
        for kill, job, wildcards in running:
            if kill.job:
                continue
            try:
                evidence = _caught_half_way(kill, wildcards, workdir)
            except OSError:  # a file vanished while the folder was read (the job went on): look again
                continue
            if evidence is not None:
                if kill.how == "crash":
                    evidence["pids"] = cluster.crash_job(job["id"])
                    if not evidence["pids"]:  # it ended in the meantime: wait for another
                        continue
                else:
                    try:
                        cluster.cancel(job["id"])
                    except subprocess.CalledProcessError:  # it ended in the meantime: wait for another
                        continue
                kill.job, kill.evidence = job, evidence
        time.sleep(0.01)


def _normalised(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Manifests name files by absolute path: the run folder is replaced by a placeholder before comparing."""
    table = table.copy()
    for col in table.columns:
        if not pd.api.types.is_numeric_dtype(table[col]):
            table[col] = table[col].map(lambda v: v.replace(str(root), "<run>") if isinstance(v, str) else v)
    return table


def _torch_rng(rng_json: Path) -> dict:
    """The torch RNG states of a training checkpoint (global and the loop's generator), by name."""
    from safetensors.torch import load_file

    tensors = load_file(rng_json.with_suffix(".safetensors"))
    entries = dict(json.loads(rng_json.read_text())["__dict__"])
    return {name: tensors[entries[name]["__tensor__"]] for name in ("torch", "generator")}


def compare_results(local: Path, slurm: Path) -> tuple[int, list[str]]:
    """Same files, byte-equal; tables equal up to the run folder in their paths. Returns (n files, notes).

    Left out by nature: logs, benchmarks (timings), TensorBoard event files (wall clock, host). A checkpoint's
    rng.json/.safetensors also hold the process's unseeded Python and NumPy global states: only its torch states
    are compared. The resumed VAE run's summary says where it resumed and has the loss curves of its own steps,
    which must be the tail of the local run's curves; every other field equal."""
    def files(root: Path) -> set[str]:
        skip = {"logs", "benchmarks", "tensorboard"}
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(root).parts)
                and not any(part.startswith(".step-") for part in p.parts)}  # a checkpoint killed mid-write

    names = files(local / "results")
    assert names == files(slurm / "results"), f"different files: {sorted(names ^ files(slurm / 'results'))[:10]}"
    notes = []
    for name in sorted(names):
        a, b = local / "results" / name, slurm / "results" / name
        if name.endswith(".parquet"):
            pd.testing.assert_frame_equal(_normalised(pd.read_parquet(a), local), _normalised(pd.read_parquet(b), slurm))
        elif re.search(r"/checkpoints/step-\d+/rng\.(json|safetensors)$", name):
            if name.endswith(".json"):
                ra, rb = _torch_rng(a), _torch_rng(b)
                assert all(torch.equal(ra[k], rb[k]) for k in ra), name
        elif name.endswith("vae_train.json") and a.read_bytes() != b.read_bytes():
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            resumed = jb.get("resumed_from")
            assert ja.get("resumed_from") is None and resumed, "only the killed run should have resumed"
            for key in ("train_loss", "val_loss"):
                assert jb[key] and ja[key][len(ja[key]) - len(jb[key]):] == jb[key], key
            curves = ("train_loss", "val_loss", "resumed_from")
            assert {k: v for k, v in ja.items() if k not in curves} == {k: v for k, v in jb.items() if k not in curves}
            notes.append(f"{name}: resumed from step {resumed}, loss curves = the local run's from step "
                         f"{resumed + 1}, every other field equal")
        else:
            assert a.read_bytes() == b.read_bytes(), name
    return len(names), notes


@pytest.mark.slurm
def test_pipeline_on_slurm_matches_local_run(cluster, tmp_path):
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    on_slurm.mkdir()
    run_local = subprocess.run(snakemake_cmd(local, "--cores", "2"), capture_output=True, text=True, timeout=900)
    assert run_local.returncode == 0, run_local.stderr[-4000:]

    env = {**cluster.env, "MEDSYNTH_SLURM_PARTITION": slurm_cluster.PARTITION,
           # no slurmdbd here, so no sacct: squeue sees finished jobs for MinJobAge seconds
           "MEDSYNTH_SLURM_STATUS_COMMAND": "squeue"}
    for name in ("MEDSYNTH_SLURM_ACCOUNT", "MEDSYNTH_SLURM_GPU_PARTITION", "MEDSYNTH_SLURM_GPU_MODEL"):
        env.pop(name, None)  # the profile's defaults: GPU rules ask for A100s, which the test node declares
    # first status check 1 s after a submission (the plugin then backs off by 10 s per round with no news)
    cmd = snakemake_cmd(on_slurm, "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "1")
    kills = tuple(Kill(k.rule, k.how, k.story) for k in KILLS)
    stop = threading.Event()
    watcher = threading.Thread(target=killer, args=(cluster, on_slurm, stop, kills), daemon=True)
    watcher.start()
    try:
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    finally:
        stop.set()
        watcher.join(timeout=10)
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"{log[-6000:]}\n{cluster.log_tail()}"

    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = sorted((j for j in cluster.jobs() if j["name"] == run_id), key=lambda j: int(j["id"]))
    shown = {j["id"]: dict(re.findall(r"(\w[\w/]*)=(\S*)", cluster.scontrol("show", "job", "-o", j["id"])))
             for j in jobs}
    print(f"\n{'slurm id':>8}  {'state':<10} {'time':>6}  {'cpus':>4} {'memory':>7} {'gres':<18} job")
    for j in jobs:
        s = shown[j["id"]]
        print(f"{j['id']:>8}  {j['state']:<10} {j['time']:>6}  {s['NumCPUs']:>4} {s['MinMemoryNode']:>7} "
              f"{s.get('TresPerJob', '-'):<18} {j['comment']}")

    # every Snakemake job ran as a SLURM job: each finished job id was submitted with a SLURM id, and the jobs
    # that finished are exactly those of the local run (a retried job keeps its Snakemake id, gets a new SLURM id)
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    finished = re.findall(r"Finished jobid: (\d+) \(Rule", log)
    assert finished and set(finished) <= {job for job, _ in submitted}, "a job finished without a SLURM submission"
    assert finished_rules(log) == finished_rules(run_local.stdout + run_local.stderr)
    assert {j["id"] for j in jobs} == {slurm_id for _, slurm_id in submitted}
    # the plugin's comment is rule_<name> or rule_<name>_wildcards_<values>
    completed = Counter(re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", j["comment"]).group(1)
                        for j in jobs if j["state"] == "COMPLETED")
    assert completed == finished_rules(log)
    slurm_logs = list((on_slurm / "results" / "logs" / "slurm").rglob("*.log"))
    assert len(slurm_logs) == len(jobs)  # one SLURM log per submission, in the run folder

    # the GPU rule got the profile's A100 with its CPUs per GPU; the CPU rules asked for no GPU at all
    for j in jobs:
        s = shown[j["id"]]
        if j["comment"].startswith("rule_train_vae_"):
            assert s.get("TresPerJob") == "gres:gpu:a100:1" and s.get("CpusPerTres") == "gres:gpu:8", s
            assert s["NumCPUs"] == "8", s
        else:
            assert "gpu" not in s.get("TresPerJob", "") and s["NumCPUs"] == "1", s

    # each killed job failed in SLURM and its retry (same rule and wildcards, new SLURM id) completed
    states = {j["id"]: j["state"] for j in jobs}
    for kill in kills:
        assert kill.job, f"no running {kill.rule} job was caught half-way: nothing was killed"
        assert states[kill.job["id"]] == {"crash": "FAILED", "scancel": "CANCELLED"}[kill.how], kill
        assert any(j["comment"] == kill.job["comment"] and j["state"] == "COMPLETED" for j in jobs), kill.rule
        assert re.search(rf"Error in rule {kill.rule}:.*?Trying to restart job", log, flags=re.S), kill.rule
    shard_kill, vae_kill = kills
    # the node-failure victim's half-written shard was deleted by Snakemake before the retry wrote it anew
    shard = shard_kill.evidence["folder"].relative_to(on_slurm)
    assert shard_kill.evidence["pids"], "the crash found no process of the job to kill"
    assert re.search(rf"Removing output files of failed job preprocess_shard since they might be corrupted:\s*\n"
                     rf"\s*{re.escape(str(shard))}", log), "the killed job's partial output was not removed"
    # the VAE retry resumed (its summary says from which step) from a checkpoint that the killed job wrote: at
    # least the one seen before the kill (a later one may have landed while SIGTERM was on its way), older than
    # the retry's start
    resumed = json.loads((on_slurm / TARGETS[2]).read_text()).get("resumed_from")
    assert resumed is not None and vae_kill.evidence["step"] <= resumed < VAE_STEPS, (resumed, vae_kill.evidence)
    ckpt = on_slurm / "results" / "models" / "choksi2025" / "work" / "vae" / "checkpoints" / f"step-{resumed:06d}"
    retry = next(j for j in jobs if j["comment"] == vae_kill.job["comment"] and j["state"] == "COMPLETED")
    retry_start = time.mktime(time.strptime(shown[retry["id"]]["StartTime"], "%Y-%m-%dT%H:%M:%S"))
    assert ckpt.stat().st_mtime < retry_start, "the retry wrote the checkpoint it claims to resume from"

    n_files, notes = compare_results(local, on_slurm)
    for kill in kills:
        what = (f"{len(kill.evidence['pids'])} processes killed with {len(kill.evidence['written'])} files of "
                f"{shard} written" if kill is shard_kill
                else f"killed after step {kill.evidence['step']}'s checkpoint, the retry resumed from step {resumed}")
        print(f"killed SLURM job {kill.job['id']} ({kill.job['comment']}) by {kill.story}: {what}; "
              f"state {states[kill.job['id']]}; its retry completed")
    for note in notes:
        print(note)
    print(f"{len(jobs)} SLURM jobs, {n_files} output files: outputs matched the local run")
