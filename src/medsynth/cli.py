"""`medsynth` console entry point.

  medsynth generate --pipeline DIR --prompt "left pleural effusion" --out x.png --seed 0 [--steps 50]
                    [--guidance 7.5] [--sampler ddim] [--negative-prompt ""] [--count N]

Errors the user can fix are printed as one line (exit status 2), not a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MedsynthError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsynth", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate images from a trained pipeline folder")
    gen.add_argument("--pipeline", required=True, help="diffusers pipeline folder written by medsynth")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--out", required=True, help="output PNG; with --count N > 1, files OUT_STEM_k.png")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first image; image k uses seed + k")
    gen.add_argument("--count", type=int, default=1)
    gen.add_argument("--steps", type=int, default=50)
    gen.add_argument("--guidance", type=float, default=7.5)
    gen.add_argument("--sampler", default=None, help="ddpm | ddim | pndm | dpmsolver++ (default: the pipeline's)")
    gen.add_argument("--negative-prompt", default="")
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--device", default="cpu")
    return parser


def generate(args) -> list[Path]:
    from .pipeline_io import load_pipeline
    from .sampling import generate_to_dir, make_scheduler

    if args.count < 1:
        raise MedsynthError("--count must be at least 1")
    pipe = load_pipeline(args.pipeline, device=args.device)
    scheduler = make_scheduler(args.sampler, pipe.scheduler.config) if args.sampler else pipe.scheduler
    out = Path(args.out)
    names = [out.name] if args.count == 1 else [f"{out.stem}_{k}{out.suffix or '.png'}" for k in range(args.count)]
    components = dict(vae=pipe.vae, unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                      scheduler=scheduler)
    seeds = [args.seed + k for k in range(args.count)]
    return generate_to_dir(components, [args.prompt] * args.count, seeds, out.parent, batch_size=args.batch_size,
                           names=names, skip_existing=False, num_inference_steps=args.steps, guidance_scale=args.guidance,
                           negative_prompt=args.negative_prompt)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            for path in generate(args):
                print(path)
    except MedsynthError as err:
        print(f"medsynth: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
