"""Diffusion training step time with cached VAE latents + text states vs encoding them every step.

What it measures: `medsynth.training.loop.train_diffusion` (strategy 'scratch': U-Net + linear projection trained,
VAE and text encoder frozen) on 64x64 one-channel images, batch 8, CPU, one thread: a VAE with 8 latent channels
(choksi2025's latent width; 3 blocks, 16x16 latents), a from-scratch cross-attention U-Net (32-64-128), and the
packaged all-MiniLM-L6-v2 (the default offline encoder) with a trainable linear projection. Both runs use the same
seed and must give the same first loss (the caches are exact); the mean step time over the steps after the first
two (warm-up) is compared. The one-time cache build is timed separately. Target: cached <= 0.7x uncached.

Run: python bench/train_caching.py [--steps 12] [--size 64]  -> bench/out/train_caching.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from medsynth.models.autoencoder import build_autoencoder  # noqa: E402
from medsynth.models.loading import load_text_encoder  # noqa: E402
from medsynth.models.unet import build_unet  # noqa: E402
from medsynth.training.data import TensorImages  # noqa: E402
from medsynth.training.loop import DiffusionData, TrainConfig, train_diffusion  # noqa: E402

PROMPTS = ["Normal chest X-ray, clear lungs.", "Right lower lobe pneumonia with consolidation.",
           "Mild cardiomegaly with pulmonary edema.", "Left pleural effusion with atelectasis.",
           "Bilateral pleural effusions, greater on the right.", "Cardiomegaly with pulmonary vascular congestion."]


def build(size: int, n: int):
    torch.manual_seed(0)
    vae = build_autoencoder(in_channels=1, latent_channels=8, block_out_channels=(32, 64, 64), layers_per_block=1,
                            norm_num_groups=32, sample_size=size)
    te, tok = load_text_encoder({"name": "embedded:minilm", "extraction": "tokens", "max_length": 32,
                                 "projection": {"kind": "linear", "out_dim": 128}})
    unet = build_unet(sample_size=size // 4, in_channels=8, cross_attention_dim=128, block_out_channels=(32, 64, 128),
                      attention_resolutions=(size // 8, size // 16), layers_per_block=1, attention_head_dim=8,
                      norm_num_groups=32)
    images = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    data = DiffusionData(TensorImages(images), [PROMPTS[i % len(PROMPTS)] for i in range(n)])
    return vae, unet, te, tok, data


def run(cached: bool, steps: int, size: int, workdir: Path) -> dict:
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state(); GradientState._reset_state()
    vae, unet, te, tok, data = build(size, 64)
    cfg = TrainConfig(max_steps=steps, batch_size=8, checkpoint_every=10 ** 9, checkpoint_limit=1,
                      cache_latents=cached, cache_text=cached, resume=False, progress_bar=False)
    start = time.perf_counter()
    result, _ = train_diffusion(vae, unet, te, tok, DDPMScheduler(num_train_timesteps=1000), data, cfg,
                                workdir / ("cached" if cached else "live"))
    total = time.perf_counter() - start
    timed = result.step_seconds[2:]
    return {"mean_step_s": sum(timed) / len(timed), "first_loss": result.losses[0],
            "setup_s_incl_cache_build": total - sum(result.step_seconds), "steps_timed": len(timed)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", default=str(HERE / "out" / "train_caching.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        live = run(False, args.steps, args.size, Path(tmp))
        cached = run(True, args.steps, args.size, Path(tmp))
    ratio = cached["mean_step_s"] / live["mean_step_s"]
    same = abs(cached["first_loss"] - live["first_loss"]) <= 1e-5 * abs(live["first_loss"])
    report = {"benchmark": "train_caching", "image_size": args.size, "batch_size": 8, "threads": 1,
              "uncached": live, "cached": cached, "ratio_cached_over_uncached": ratio, "target_ratio": 0.7,
              "same_first_loss": same, "passed": bool(ratio <= 0.7 and same),
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
