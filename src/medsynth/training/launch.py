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
from ..families import StageJob, family_of
from ..io import read_json, write_json


def stage_arguments(stage: str, model_config: Path, manifest: Path, results: Path, work: Path, out: Path,
                    summary: Path, seed: int, inputs: dict | None = None) -> list[str]:
    """Arguments of `medsynth train` for one stage (`inputs`: earlier stages' folders by stage name)."""
    args = [stage, "--model-config", str(model_config), "--manifest", str(manifest), "--results", str(results),
            "--work", str(work), "--out", str(out), "--summary", str(summary), "--seed", str(int(seed))]
    for name, folder in sorted((inputs or {}).items()):
        args += ["--input", f"{name}={folder}"]
    return args


def mixed_precision(model_cfg: dict, stage: str) -> str:
    """A stage's `train.mixed_precision`: its config block is model_cfg[stage] (see medsynth.families)."""
    return ((model_cfg.get(stage) or {}).get("train") or {}).get("mixed_precision", "no")


def launch_command(n_processes: int, stage_args: list[str], mixed_precision: str = "no",
                   cpu: bool = False) -> list[str]:
    """The `accelerate launch` command line that runs `medsynth train` on n_processes processes of one node."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(int(n_processes)),
           "--num_machines", "1", "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    cmd += ["--cpu"] if cpu else ["--multi_gpu"]
    return cmd + ["--module", "medsynth.cli", "train", *stage_args]


def run_stage(stage: str, model_cfg: dict, manifest: Path, results: Path, work: Path, out: Path, summary: Path,
              seed: int, inputs: dict | None = None, gpus: int = 0, log=None, keep_checkpoints: bool = True) -> dict:
    """Train one stage and write its summary JSON; on more than one GPU through `accelerate launch` (the launched
    processes' output goes to work/accelerate-<stage>.log). Without keep_checkpoints, the finished stage's resume
    checkpoints are removed (config `keep_checkpoints`: the saved model is what later stages read)."""
    summary_of = _run_stage(stage, model_cfg, manifest, results, work, out, summary, seed, inputs, gpus, log)
    if not keep_checkpoints:
        from .checkpoint import drop_finished

        freed = drop_finished(work)
        if log is not None and freed:
            log.info("removed the finished stage's checkpoints (%.1f MB)", freed / 1e6)
    return summary_of


def _run_stage(stage, model_cfg, manifest, results, work, out, summary, seed, inputs, gpus, log) -> dict:
    family_of(model_cfg).check_stage(stage)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if int(gpus or 0) > 1:
        config_path = work / "model.json"
        config_path.write_text(json.dumps(model_cfg, indent=2, sort_keys=True))
        cmd = launch_command(int(gpus), stage_arguments(stage, config_path, manifest, results, work, out, summary,
                                                        seed, inputs), mixed_precision(model_cfg, stage))
        out_log = work / f"accelerate-{stage}.log"
        if log is not None:
            log.info("multi-GPU: %s (output: %s)", " ".join(cmd), out_log)
        with open(out_log, "w") as sink:
            proc = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise MedsynthError(f"`accelerate launch` of the {stage} stage on {gpus} GPUs failed (exit status "
                                f"{proc.returncode}); see {out_log}")
        return read_json(summary)
    return run_stage_here(stage, model_cfg, manifest, results, work, out, summary, seed, inputs)


def run_stage_here(stage: str, model_cfg: dict, manifest: Path, results: Path, work: Path, out: Path,
                   summary: Path, seed: int, inputs: dict | None = None) -> dict:
    """One process's part of a stage (all processes of a launch call this; the main one writes the summary)."""
    from ..io import read_table
    from .loop import distributed_state

    job = StageJob(model_cfg=model_cfg, manifest=read_table(manifest), results=Path(results), work=Path(work),
                   out=Path(out), seed=int(seed), inputs={k: Path(v) for k, v in (inputs or {}).items()})
    result = family_of(model_cfg).train_stage(stage, job)
    state = distributed_state()
    result["processes"] = state.num_processes
    # CPU float reductions depend on the thread count: same config + seed + threads is bit-identical, not across
    import torch

    result["torch_threads"] = torch.get_num_threads()
    if state.is_main_process:
        write_json(result, summary)
    state.wait_for_everyone()
    return result
