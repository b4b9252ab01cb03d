"""Training throughput and model-FLOPs utilisation of an SD-1.5-size U-Net (random weights) on one GPU.

What it measures: one optimisation step of UNet2DConditionModel with Stable Diffusion 1.5's configuration
(860 M parameters, cross-attention to 77x768 text states) on VAE-latent-sized inputs (256 px -> 32x32x4 latents,
512 px -> 64x64x4), fp32 master weights with bf16 autocast (accelerate's `mixed_precision="bf16"`), AdamW,
SDPA attention, TF32 on. FLOPs per step = 3 x the forward FLOPs counted by torch.utils.flop_counter on the
same inputs (forward + 2x for backward); MFU = achieved FLOP/s / the GPU's dense bf16 peak (given or looked up).

Run: python bench/gpu_unet_throughput.py --out bench/out/gpu_unet_throughput.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

PEAK_BF16_DENSE_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_DENSE_TFLOPS.items():
        if key in name:
            return value
    return None


def forward_flops(unet, x, t, ctx) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), FlopCounterMode(display=False) as counter:
        unet(x, t, encoder_hidden_states=ctx)
    return counter.get_total_flops()


def measure(unet, opt, px: int, batch: int, steps: int, warmup: int, device) -> dict:
    lat = px // 8
    x = torch.randn(batch, 4, lat, lat, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    ctx = torch.randn(batch, 77, 768, device=device)
    noise = torch.randn_like(x)
    fwd = forward_flops(unet, x, t, ctx)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = unet(x, t, encoder_hidden_states=ctx).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - start) / steps
    achieved = 3 * fwd / dt
    return {
        "resolution_px": px, "latent": [4, lat, lat], "batch": batch, "step_s": dt,
        "images_per_s": batch / dt, "forward_gflops_per_image": fwd / batch / 1e9,
        "achieved_tflops": achieved / 1e12, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="256:32,256:64,512:8,512:16", help="px:batch pairs")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the U-Net")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (this benchmark is run on a lent GPU machine, not in CI)")
    from diffusers import UNet2DConditionModel

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops(name)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).to(device).train()
    n_params = sum(p.numel() for p in unet.parameters())
    model = torch.compile(unet) if args.compile else unet
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5, fused=True)
    rows = []
    for spec in args.configs.split(","):
        px, batch = (int(v) for v in spec.split(":"))
        row = measure(model, opt, px, batch, args.steps, args.warmup, device)
        row["mfu"] = row["achieved_tflops"] / peak if peak else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "benchmark": "gpu_unet_throughput", "device": name, "peak_bf16_dense_tflops": peak,
        "unet_params": n_params, "precision": "fp32 weights + bf16 autocast", "optimizer": "AdamW (fused)",
        "attention": "SDPA", "compiled": args.compile, "torch": torch.__version__,
        "python": platform.python_version(), "results": rows,
    }
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))


if __name__ == "__main__":
    main()
