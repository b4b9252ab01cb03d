"""Run a training stage in this process (one device) or under `accelerate launch` (several GPUs).

The Snakemake train rules call `run_stage` with the job's GPU count (`resources.gpu`, set per rule by the SLURM
profile). With more than one GPU it starts

    python -m accelerate.commands.launch --multi_gpu --num_processes N --num_machines 1 --mixed_precision MP \
        --module medsynth.cli train STAGE --model-config work/model.json ...

(one SLURM task; accelerate spawns one process per GPU), and each process runs `medsynth.cli train`, which is
also usable by hand: `accelerate launch --num_processes 4 -m medsynth.cli train diffusion ...`.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..errors import MedsynthError
from ..io import read_json, write_json

STAGES = ("vae", "diffusion")


def stage_arguments(stage: str, model_config: Path, manifest: Path, results: Path, work: Path, out: Path,
                    summary: Path, seed: int, vae: Path | None = None) -> list[str]:
    """Arguments of `medsynth train` for one stage."""
    if stage not in STAGES:
        raise MedsynthError(f"unknown training stage '{stage}'; choose one of {', '.join(STAGES)}")
    args = [stage, "--model-config", str(model_config), "--manifest", str(manifest), "--results", str(results),
            "--work", str(work), "--out", str(out), "--summary", str(summary), "--seed", str(int(seed))]
    if vae is not None:
        args += ["--vae", str(vae)]
    return args


def launch_command(n_processes: int, stage_args: list[str], mixed_precision: str = "no",
                   cpu: bool = False) -> list[str]:
    """The `accelerate launch` command line that runs `medsynth train` on n_processes processes of one node."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(int(n_processes)),
           "--num_machines", "1", "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    cmd += ["--cpu"] if cpu else ["--multi_gpu"]
    return cmd + ["--module", "medsynth.cli", "train", *stage_args]


def run_stage(stage: str, model_cfg: dict, manifest: Path, results: Path, work: Path, out: Path, summary: Path,
              seed: int, vae: Path | None = None, gpus: int = 0, log=None) -> dict:
    """Train one stage and write its summary JSON; on more than one GPU through `accelerate launch` (the launched
    processes' output goes to work/accelerate-<stage>.log)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if int(gpus or 0) > 1:
        config_path = work / "model.json"
        config_path.write_text(json.dumps(model_cfg, indent=2, sort_keys=True))
        block = model_cfg["vae" if stage == "vae" else "diffusion"]["train"]
        cmd = launch_command(int(gpus), stage_arguments(stage, config_path, manifest, results, work, out, summary,
                                                        seed, vae), block.get("mixed_precision", "no"))
        out_log = work / f"accelerate-{stage}.log"
        if log is not None:
            log.info("multi-GPU: %s (output: %s)", " ".join(cmd), out_log)
        with open(out_log, "w") as sink:
            proc = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise MedsynthError(f"`accelerate launch` of the {stage} stage on {gpus} GPUs failed (exit status "
                                f"{proc.returncode}); see {out_log}")
        return read_json(summary)
    return run_stage_here(stage, model_cfg, manifest, results, work, out, summary, seed, vae)


def run_stage_here(stage: str, model_cfg: dict, manifest: Path, results: Path, work: Path, out: Path,
                   summary: Path, seed: int, vae: Path | None = None) -> dict:
    """One process's part of a stage (all processes of a launch call this; the main one writes the summary)."""
    from ..io import read_table
    from .loop import distributed_state
    from .stages import train_diffusion_stage, train_vae_stage

    df = read_table(manifest)
    if stage == "vae":
        result = train_vae_stage(df, Path(results), model_cfg, Path(work), Path(out), seed)
    elif stage == "diffusion":
        result = train_diffusion_stage(df, Path(results), model_cfg, vae and Path(vae), Path(work), Path(out), seed)
    else:
        raise MedsynthError(f"unknown training stage '{stage}'; choose one of {', '.join(STAGES)}")
    state = distributed_state()
    result["processes"] = state.num_processes
    if state.is_main_process:
        write_json(result, summary)
    state.wait_for_everyone()
    return result
