"""A throwaway single-node SLURM cluster (munged + slurmctld + slurmd) for trying profiles/slurm on one machine.

Everything it writes (slurm.conf, gres.conf, munge key and socket, state, logs, pid files) lives in one folder, so
it never uses a system munged and several clusters cannot share state; the only thing outside it is a symlink
/etc/slurm/slurm.conf -> <folder>/slurm.conf while the cluster runs (see SYSTEM_CONF). Needs root (slurmd launches
jobs as their submitting user) and Debian's slurmctld, slurmd, slurm-client and munge; `install()` adds them with
apt-get (no recommended packages, and without letting the packages start the distribution's own daemons).

GPU requests: with `fake_gpus=N` the node declares N GPUs of type `gpu_type` (gres.conf over empty files standing
in for /dev/nvidia*) and, through SlurmdParameters=config_overrides, as many CPUs and as much memory as the largest
GPU job asks for. SLURM then schedules `--gpus=a100:4 --cpus-per-gpu=8 --mem 256000` here as it would on an A100
node; the job itself sees no CUDA device and runs on the CPU.

Try the profile by hand (as root):
    python tests/slurm_cluster.py start /tmp/mycluster     # a node with 4 fake A100s; prints `export SLURM_CONF=...`
    export SLURM_CONF=/tmp/mycluster/slurm.conf
    MEDSYNTH_SLURM_PARTITION=medsynth MEDSYNTH_SLURM_STATUS_COMMAND=squeue \\
        snakemake --profile profiles/slurm <target> --configfile config.yaml config/ci.yaml
    python tests/slurm_cluster.py stop /tmp/mycluster
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The three daemons' packages and the client commands; slurm-wlm (the metapackage) adds nothing needed here, and
# --no-install-recommends skips slurm-wlm-plugins (HDF5, InfluxDB, MySQL, ... ~100 MB) that a test never loads.
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "medsynth"
# squeue only sees jobs that slurmctld still remembers: without slurmdbd (no sacct) a finished job must stay in
# slurmctld's memory until Snakemake's next status poll, so MinJobAge is far above the plugin's poll interval.
MIN_JOB_AGE_S = 900
# snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable, SLURM_CONF included, before its `srun`
# inside the job (snakemake-executor-plugin-slurm issue #164), so that srun only finds a config at the compiled-in
# default path. The cluster links its slurm.conf there while it runs and removes the link when it stops.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = ".medsynth-test-cluster"


class ClusterError(RuntimeError):
    """The cluster could not be installed, started or queried; the message says which daemon and its log."""


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can (root, and the daemons or apt-get present)."""
    if sys.platform != "linux":
        return f"SLURM test cluster needs Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (slurmd runs jobs as their user; apt-get installs the daemons)"
    if missing_binaries() and shutil.which("apt-get") is None:
        return f"SLURM daemons missing ({', '.join(missing_binaries())}) and no apt-get to install them"
    if _foreign_system_conf():
        return f"{SYSTEM_CONF} exists: this machine belongs to a real SLURM cluster; use that one, not a test cluster"
    other = _running_test_cluster()
    if other is not None:
        return (f"another test cluster is running at {other} (it holds {SYSTEM_CONF}, which only one cluster can); "
                f"stop it with: python tests/slurm_cluster.py stop {other}")
    return None


def _running_test_cluster() -> Path | None:
    """The folder of a test cluster of ours whose slurmctld is alive and holds the /etc/slurm link, if any."""
    if not SYSTEM_CONF.is_symlink():
        return None
    root = Path(os.readlink(SYSTEM_CONF)).parent
    pid = _read_pid(root / "run" / "slurmctld.pid")
    if not (root / MARKER).exists() or pid is None or not _alive(pid):
        return None
    comm = Path(f"/proc/{pid}/comm")
    return root if comm.exists() and comm.read_text().strip() == "slurmctld" else None  # not a reused pid


def _foreign_system_conf() -> bool:
    """True when /etc/slurm/slurm.conf is a real site config (not a link left by a test cluster of ours)."""
    if not SYSTEM_CONF.is_symlink():
        return SYSTEM_CONF.exists()
    target = Path(os.readlink(SYSTEM_CONF))
    return target.exists() and not (target.parent / MARKER).exists()


def missing_binaries() -> list[str]:
    return [b for b in (*DAEMONS, "sbatch", "squeue", "scontrol", "scancel", "sinfo") if shutil.which(b) is None]


POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def install(timeout_s: float = 600) -> list[str]:
    """apt-get install the daemons and clients when any command is missing (non-interactive); returns what it ran.

    While it runs, /usr/sbin/policy-rc.d (when absent) answers 101, so the packages' maintainer scripts do not
    start the system's munged/slurmctld/slurmd (on a clean CI machine they would outlive the test)."""
    if not missing_binaries():
        return []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ran = []
    own_policy = not POLICY_RC_D.exists()
    if own_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# written by tests/slurm_cluster.py during apt-get install\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
            ran.append(" ".join(cmd))
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                raise ClusterError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    if missing_binaries():
        raise ClusterError(f"after apt-get install still missing: {', '.join(missing_binaries())}")
    return ran


def node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (`slurmd -C`: CPUs, sockets, cores, threads, RealMemory in MB)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0]
    fields = dict(item.split("=", 1) for item in first.split())
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {k: fields[k] for k in keep if k in fields}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """One single-node cluster rooted at `root`; `start()` returns once the node is idle and accepts jobs."""

    root: Path
    hostname: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    env: dict[str, str] = field(default_factory=dict)
    fake_gpus: int = 0         # GPUs the node declares (gres gpu:<gpu_type>:<n>); 0: a CPU-only node
    gpu_type: str = "a100"

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def _paths(self) -> dict[str, Path]:
        r = self.root
        return {name: r / name for name in ("state", "spool", "log", "run", "munge")}

    def write_config(self, min_cpus: int = 0, min_memory_mb: int = 0) -> Path:
        """Write slurm.conf for this host: one default partition, no accounting.

        The node is this machine (`slurmd -C`) unless fake GPUs or min_cpus/min_memory_mb ask for more: then it
        declares max(real, asked) CPUs and memory (config_overrides keeps slurmd from draining the node for it)."""
        p = self._paths()
        for d in p.values():
            d.mkdir(parents=True, exist_ok=True)
        p["munge"].chmod(0o700)  # munged refuses a socket/key folder that others can write
        hw = node_hardware()
        gres_lines = []
        if self.fake_gpus or int(hw["CPUs"]) < min_cpus or int(hw.get("RealMemory", 0)) < min_memory_mb:
            # bigger than the machine: only CPUs and RealMemory (a topology would have to add up to the CPUs)
            hw = {"CPUs": str(max(int(hw["CPUs"]), min_cpus)),
                  "RealMemory": str(max(int(hw.get("RealMemory", 0)), min_memory_mb))}
            gres_lines.append("SlurmdParameters=config_overrides")
        if self.fake_gpus:
            devices = self.root / "dev"
            devices.mkdir(exist_ok=True)
            for i in range(self.fake_gpus):
                (devices / f"nvidia{i}").touch()  # gres/gpu wants one device file per GPU; no driver behind them
            hw["Gres"] = f"gpu:{self.gpu_type}:{self.fake_gpus}"
            gres_lines.append("GresTypes=gpu")
            # slurmd reads gres.conf next to the slurm.conf it was given
            (self.root / "gres.conf").write_text(
                "AutoDetect=off\n"
                f"NodeName={self.hostname} Name=gpu Type={self.gpu_type} File={devices}/nvidia[0-{self.fake_gpus - 1}]\n")
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        lines = [*gres_lines,
            "ClusterName=medsynth-test",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={p['munge'] / 'munge.socket'}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={p['state']}",
            f"SlurmdSpoolDir={p['spool']}",
            f"SlurmctldPidFile={p['run'] / 'slurmctld.pid'}",
            f"SlurmdPidFile={p['run'] / 'slurmd.pid'}",
            f"SlurmctldLogFile={p['log'] / 'slurmctld.log'}",
            f"SlurmdLogFile={p['log'] / 'slurmd.log'}",
            # containers (gVisor, Docker) rarely allow cgroup control: track job processes by parent pid instead
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SchedulerType=sched/builtin",
            # cores and memory are both consumable, so --mem and --cpus-per-task requests are really enforced
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            f"MinJobAge={MIN_JOB_AGE_S}",
            "KillWait=5",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.hostname} NodeAddr=127.0.0.1 {node} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.hostname} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (self.root / MARKER).write_text("created by tests/slurm_cluster.py\n")
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        return self.conf

    def _start_munge(self) -> None:
        m = self._paths()["munge"]
        key = m / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))  # a fresh key: this cluster never trusts the system's munge key
            key.chmod(0o400)
        self._run(["munged", "--force", f"--socket={m / 'munge.socket'}", f"--key-file={key}",
                   f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}",
                   f"--seed-file={m / 'munged.seed'}"], "munged", m / "munged.log")

    def _run(self, cmd: list[str], name: str, log: Path) -> None:
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ClusterError(f"{name} did not start ({done.returncode}): {done.stderr.strip()} {tail}")

    def start(self, timeout_s: float = 90) -> "Cluster":
        """Start munged, slurmctld and slurmd; wait until the node is idle. Raises ClusterError with the logs."""
        if not self.conf.exists():
            self.write_config()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        p = self._paths()
        self._link_system_conf()
        self._start_munge()
        # -c: clear saved state, so a reused folder never resurrects jobs of an earlier run
        self._run(["slurmctld", "-c", "-f", str(self.conf)], "slurmctld", p["log"] / "slurmctld.log")
        self._run(["slurmd", "-f", str(self.conf)], "slurmd", p["log"] / "slurmd.log")
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.node_state()
            if state.startswith("idle") or state.startswith("mix") or state.startswith("alloc"):
                return self
            time.sleep(1)
        raise ClusterError(f"node {self.hostname} not idle after {timeout_s:.0f}s (state {state!r});\n"
                           + self.log_tail())

    def _link_system_conf(self) -> None:
        if _foreign_system_conf():
            raise ClusterError(f"{SYSTEM_CONF} is a real site config; refusing to replace it")
        other = _running_test_cluster()
        if other is not None and other != self.root:
            raise ClusterError(f"the test cluster at {other} is running and holds {SYSTEM_CONF}")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.is_symlink():
            SYSTEM_CONF.unlink()  # a stale link of an earlier test cluster (checked above)
        SYSTEM_CONF.symlink_to(self.conf)

    def _unlink_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()

    def node_state(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return done.stdout.strip().lower() if done.returncode == 0 else ""

    def scontrol(self, *args: str) -> str:
        return subprocess.run(["scontrol", *args], env=self.env, capture_output=True, text=True,
                              check=True).stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld remembers (pending, running and, for MinJobAge, finished): id, name, state, ..."""
        fmt = "%i|%j|%T|%k|%M|%u"
        out = subprocess.run(["squeue", "--states=all", "--noheader", f"--format={fmt}"], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        keys = ("id", "name", "state", "comment", "time", "user")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def cancel(self, job_id: str, *options: str) -> None:
        subprocess.run(["scancel", *options, job_id], env=self.env, check=True, capture_output=True, text=True)

    def crash_job(self, job_id: str) -> list[int]:
        """SIGKILL every process of a running job on this node (`scontrol listpids`) at once, as a crashing node
        would: none of them gets a signal it could handle, so nothing inside the job cleans up after itself
        (scancel instead sends SIGTERM first). slurmstepd survives and reports the job FAILED. Returns the pids."""
        killed: list[int] = []
        for _ in range(5):  # a process forked while the first list was read is caught by the next round
            out = subprocess.run(["scontrol", "listpids", job_id], env=self.env, capture_output=True, text=True)
            pids = [int(f[0]) for f in (line.split() for line in out.stdout.splitlines()[1:])
                    if f and f[0].isdigit() and int(f[0]) not in killed]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed += pids
            time.sleep(0.05)
        return killed

    def log_tail(self, n_chars: int = 3000) -> str:
        parts = []
        for log in sorted(self._paths()["log"].glob("*.log")) + [self._paths()["munge"] / "munged.log"]:
            if log.exists():
                parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-n_chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the three daemons by their pid files (only ours), waiting briefly for each to exit."""
        p = self._paths()
        if _read_pid(p["run"] / "slurmctld.pid") is not None:
            # cancel what is still queued or running, so no job process outlives its cluster
            subprocess.run(["scancel", "--full", "--user=root"], env={**os.environ, "SLURM_CONF": str(self.conf)}, capture_output=True,
                           timeout=30)
        pidfiles = [p["run"] / "slurmd.pid", p["run"] / "slurmctld.pid", p["munge"] / "munged.pid"]
        for pidfile in pidfiles:
            pid = _read_pid(pidfile)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self._unlink_system_conf()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _read_pid(path: Path) -> int | None:
    if not path.exists():
        return None
    text = path.read_text().strip()
    return int(text) if re.fullmatch(r"\d+", text) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__)
        return 2
    cluster = Cluster(Path(argv[2]).resolve(), fake_gpus=4)
    if argv[1] == "start":
        reason = unavailable_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        install()
        cluster.root.mkdir(parents=True, exist_ok=True)
        cluster.write_config(min_cpus=32, min_memory_mb=256000)  # room for profiles/slurm's 4-GPU jobs
        cluster.start()
        print(f"cluster up: node {cluster.hostname}, partition {PARTITION}\nexport SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
        print("cluster stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
