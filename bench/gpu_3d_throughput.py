"""GPU benchmark of the 3D families (xing2024): training volumes/s and sampling s/volume at 64^3 and 128^3 in bf16.

    python bench/gpu_3d_throughput.py [--sizes 64 128] [--batch 2] [--steps 20] [--ddim 50] [--out bench/out.json]

Training: one optimiser step of the ddpm3d U-Net (text + DFBlocks) and of the pix2pix3d generator + PatchGAN under
torch.autocast(bf16), timed after warm-up with CUDA synchronisation. Sampling: ddpm3d DDIM (--ddim steps) and one
pix2pix forward per volume. Refuses to run without CUDA (CPU numbers would not be what it reports)."""
from __future__ import annotations

import argparse
import json
import time

import torch


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ddim", type=int, default=50)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures GPU throughput only")
    from monai.losses import PatchAdversarialLoss
    from monai.networks.schedulers import DDIMScheduler

    from medsynth.models.fusion3d import AffineTextUNet3D, Generator3D, patch_discriminator

    dev, res = "cuda", {"device": torch.cuda.get_device_name(), "dtype": "bf16", "batch": args.batch,
                        "channels": args.channels, "results": []}
    for n in args.sizes:
        shape = (args.batch, 1, n, n, n)
        x, mask, text = torch.randn(shape, device=dev), torch.rand(args.batch, 4, n, n, n, device=dev), \
            torch.randn(args.batch, 384, device=dev)
        unet = AffineTextUNet3D(5, 1, args.channels, text_dim=384).to(dev)
        gen = Generator3D(4, 1, args.channels, text_dim=384).to(dev)
        disc = patch_discriminator(5, 32, 3).to(dev)
        opt_u = torch.optim.Adam(unet.parameters(), 1e-4)
        opt_g, opt_d = torch.optim.Adam(gen.parameters(), 1e-4), torch.optim.Adam(disc.parameters(), 1e-4)
        adv = PatchAdversarialLoss(criterion="least_squares")

        def ddpm_step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                t = torch.randint(0, 250, (args.batch,), device=dev)
                loss = (unet(torch.cat([x, mask], 1), t, text).float() - x).abs().mean()
            loss.backward()
            opt_u.step()
            opt_u.zero_grad(set_to_none=True)

        def gan_step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                fake = gen(mask, text)
                d = adv(disc(torch.cat([x, mask], 1))[-1].float(), True, True) + \
                    adv(disc(torch.cat([fake.detach(), mask], 1))[-1].float(), False, True)
            d.backward()
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                g = 100 * (fake.float() - x).abs().mean() + adv(disc(torch.cat([fake, mask], 1))[-1].float(), True,
                                                                 False)
            g.backward()
            opt_g.step()
            opt_g.zero_grad(set_to_none=True)
            disc.zero_grad(set_to_none=True)

        sched = DDIMScheduler(num_train_timesteps=250, schedule="cosine")
        sched.set_timesteps(args.ddim)

        @torch.no_grad()
        def ddpm_sample():
            v = torch.randn(shape, device=dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                for t in sched.timesteps:
                    out = unet(torch.cat([v, mask], 1), torch.full((args.batch,), int(t), device=dev), text)
                    v, _ = sched.step(out.float(), int(t), v)

        @torch.no_grad()
        def gan_sample():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                gen(mask, text)

        for name, fn, reps, per in (("ddpm3d train", ddpm_step, args.steps, "volumes/s"),
                                    ("pix2pix3d train", gan_step, args.steps, "volumes/s"),
                                    ("ddpm3d sample (DDIM %d)" % args.ddim, ddpm_sample, 1, "s/volume"),
                                    ("pix2pix3d sample", gan_sample, args.steps, "s/volume")):
            torch.cuda.reset_peak_memory_stats()
            sec = timed(fn, reps)
            value = args.batch / sec if per == "volumes/s" else sec / args.batch
            res["results"].append({"size": n, "what": name, per: value,
                                   "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30})
            print(f"{n}^3 {name}: {value:.3f} {per}", flush=True)
        del unet, gen, disc, opt_u, opt_g, opt_d
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
