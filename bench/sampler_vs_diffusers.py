"""Our txt2img sampler vs the stock diffusers StableDiffusionPipeline on the same model, prompts and seeds.

What it measures: a from-scratch latent-diffusion model at choksi2025's layout scaled down (VAE with 8 latent
channels, cross-attention U-Net 32-64-128, the packaged MiniLM text encoder + linear projection, random weights:
speed and equality do not depend on training), DDIM with classifier-free guidance 7.5, batch of 4 images at
64x64 (CPU) or 256x256 (--size, GPU). Both paths get one CPU generator per image with the same seeds; images must
agree within 1e-4 (max abs, [0, 1] scale). Runs alternate (ours, diffusers) to share machine noise; medians of
--reps runs. Target: ours <= 1.05x the diffusers time. Also images/s and peak memory (CUDA: max allocated per
path; CPU: process peak RSS, which is shared by both paths).

Run: python bench/sampler_vs_diffusers.py [--steps 20] [--size 64] [--reps 3] -> bench/out/sampler_vs_diffusers.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import DDPMScheduler, StableDiffusionPipeline  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from medsynth.models.autoencoder import build_autoencoder, set_scaling_factor  # noqa: E402
from medsynth.models.loading import load_text_encoder  # noqa: E402
from medsynth.models.unet import build_unet  # noqa: E402
from medsynth.sampling import make_scheduler, txt2img  # noqa: E402

PROMPTS = ["Normal chest X-ray, clear lungs.", "Left pleural effusion with atelectasis.",
           "Mild cardiomegaly with pulmonary edema.", "Right lower lobe pneumonia with consolidation."]


def components(size: int, device):
    torch.manual_seed(0)
    vae = build_autoencoder(in_channels=1, latent_channels=8, block_out_channels=(32, 64, 64), layers_per_block=1,
                            norm_num_groups=32, sample_size=size)
    set_scaling_factor(vae, 1.3)
    te, tok = load_text_encoder({"name": "embedded:minilm", "extraction": "tokens", "max_length": 77,
                                 "projection": {"kind": "linear", "out_dim": 128}})
    unet = build_unet(sample_size=size // 4, in_channels=8, cross_attention_dim=128, block_out_channels=(32, 64, 128),
                      attention_resolutions=(size // 8, size // 16), layers_per_block=1, attention_head_dim=8,
                      norm_num_groups=32)
    comp = dict(vae=vae.eval().to(device), unet=unet.eval().to(device), text_encoder=te.eval().to(device),
                tokenizer=tok, scheduler=make_scheduler("ddim", DDPMScheduler(num_train_timesteps=1000).config))
    return comp


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
    return out, time.perf_counter() - start, peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--out", default=str(HERE / "out" / "sampler_vs_diffusers.json"))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    comp = components(args.size, device)
    pipe = StableDiffusionPipeline(**comp, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    seeds = list(range(len(PROMPTS)))

    def ours():
        return txt2img(**comp, prompts=PROMPTS, seeds=seeds, num_inference_steps=args.steps,
                       guidance_scale=args.guidance)

    def stock():
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        with torch.no_grad():
            return pipe(PROMPTS, num_inference_steps=args.steps, guidance_scale=args.guidance, generator=gens,
                        output_type="pt").images.float().cpu()

    ours(); stock()  # warm-up (allocator, kernels)
    t_ours, t_stock, peaks = [], [], {"ours": [], "diffusers": []}
    for _ in range(args.reps):
        a, ta, pa = timed(ours, device)
        b, tb, pb = timed(stock, device)
        t_ours.append(ta); t_stock.append(tb); peaks["ours"].append(pa); peaks["diffusers"].append(pb)
    max_diff = float((a - b).abs().max())
    med_ours, med_stock = statistics.median(t_ours), statistics.median(t_stock)
    report = {
        "benchmark": "sampler_vs_diffusers", "device": torch.cuda.get_device_name() if device.type == "cuda" else
        (platform.processor() or platform.machine()), "sampler": "ddim", "steps": args.steps,
        "guidance_scale": args.guidance, "batch": len(PROMPTS), "image_size": args.size,
        "ours_s": t_ours, "diffusers_s": t_stock, "median_ours_s": med_ours, "median_diffusers_s": med_stock,
        "ratio_ours_over_diffusers": med_ours / med_stock, "target_ratio": 1.05,
        "images_per_s_ours": len(PROMPTS) / med_ours, "images_per_s_diffusers": len(PROMPTS) / med_stock,
        "max_abs_image_diff": max_diff, "tolerance": 1e-4,
        "peak_cuda_mib": {k: max(v) for k, v in peaks.items()} if device.type == "cuda" else None,
        "peak_rss_mib_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }
    report["passed"] = bool(max_diff <= 1e-4 and report["ratio_ours_over_diffusers"] <= 1.05)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
