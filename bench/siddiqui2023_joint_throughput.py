"""Joint DreamBooth fine-tuning throughput (siddiqui2023): SD v1.4's U-Net + a BERT-base text encoder (RadBERT's
architecture, 768-d = the U-Net's cross-attention size), both trained, at 512 px in bf16, on one GPU.

What one step is (the `joint` strategy of medsynth.training.strategies with prior preservation, as the training
loop runs it): instance batch + the same number of class-prior images (DreamBooth doubles the U-Net batch), text
encoder run on the 77-token prompts with gradients (fp32 master weights, bf16 autocast), epsilon MSE on both halves
(prior weight 1), AdamW over U-Net + text encoder in ONE optimiser, gradient clipping 1.0 over both. Latents are
VAE-sized random tensors (the VAE is frozen and its latents cacheable: not timed). Random weights: the speed of a
step does not depend on them. Reported: instance images/s (what the thesis' "batch 2" counts) and peak memory.

Run (lent GPU): python bench/siddiqui2023_joint_throughput.py --out bench/out/siddiqui2023_joint_throughput.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_unet_throughput import SD15_UNET  # noqa: E402  (SD v1.4 and v1.5 share the U-Net architecture)

RADBERT = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, max_position_embeddings=512)


def measure(unet, text, opt, px: int, batch: int, steps: int, warmup: int, device) -> dict:
    lat = px // 8
    n = 2 * batch  # instance + class-prior images
    x = torch.randn(n, 4, lat, lat, device=device)
    noise = torch.randn_like(x)
    t = torch.randint(0, 1000, (n,), device=device)
    ids = torch.randint(1000, 30000, (n, 77), device=device)
    params = [p for m in (unet, text) for p in m.parameters()]

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ctx = text(input_ids=ids).last_hidden_state
            pred = unet(x, t, encoder_hidden_states=ctx).sample
        inst, prior = pred.float().chunk(2)
        loss = torch.nn.functional.mse_loss(inst, noise[:batch]) + torch.nn.functional.mse_loss(prior, noise[batch:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
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
    return {"resolution_px": px, "instance_batch": batch, "unet_batch": n, "step_s": dt,
            "instance_images_per_s": batch / dt, "unet_images_per_s": n / dt,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="512:2,512:4,512:8", help="px:instance-batch pairs (thesis: 512:2)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (this benchmark is run on a lent GPU machine, not in CI)")
    from diffusers import UNet2DConditionModel
    from transformers import BertConfig, BertModel

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).to(device).train()
    unet.enable_gradient_checkpointing()
    text = BertModel(BertConfig(**RADBERT), add_pooling_layer=False).to(device, torch.float32).train()
    opt = torch.optim.AdamW([p for m in (unet, text) for p in m.parameters()], lr=5e-5, fused=True)
    rows = []
    for spec in args.configs.split(","):
        px, batch = (int(v) for v in spec.split(":"))
        rows.append(measure(unet, text, opt, px, batch, args.steps, args.warmup, device))
        print(json.dumps(rows[-1]), flush=True)
    result = {"benchmark": "siddiqui2023_joint_throughput", "device": torch.cuda.get_device_name(),
              "unet_params": sum(p.numel() for p in unet.parameters()),
              "text_encoder_params": sum(p.numel() for p in text.parameters()),
              "precision": "fp32 weights + bf16 autocast", "optimizer": "AdamW (fused), one for U-Net + text encoder",
              "gradient_checkpointing": "U-Net", "prior_preservation": True, "torch": torch.__version__,
              "python": platform.python_version(), "results": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))


if __name__ == "__main__":
    main()
