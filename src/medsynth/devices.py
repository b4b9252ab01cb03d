"""Which torch device a step runs on, chosen in one place."""
from __future__ import annotations


def job_device(gpus: int | str | None = None) -> str:
    """"cuda" where CUDA is available and the job was given a GPU, else "cpu". `gpus`: the job's `gpu` resource
    (0 in the CPU demo: CPU even on a GPU machine, so the same config gives the same numbers); None: any GPU there."""
    import torch

    if gpus is not None and int(gpus or 0) <= 0:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
