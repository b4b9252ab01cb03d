"""`medsynth` console entry point.

  medsynth generate --pipeline DIR --prompt "left pleural effusion" --out x.png --seed 0 [--steps 50]
                    [--guidance 7.5] [--sampler ddim] [--negative-prompt ""] [--count N]
                    [--init-image xray.png --strength 0.6 [--mask lung_mask.png]]     (img2img / SDEdit)
  medsynth train STAGE --model-config model.json|yaml --manifest manifest.parquet --results DIR
                 --work DIR --out DIR --summary summary.json [--seed 0] [--input STAGE=DIR ...]
  medsynth app [--results results] [--port 8501] [--configfile config.yaml ...]   (the Streamlit app, 127.0.0.1)

  medsynth check-config FILE.yaml ...    (YAML syntax errors with file, line and column)

`train` runs one stage of a config model entry (a stage of its family, `kind:`; ldm2d: vae, diffusion); start it
under `accelerate launch --num_processes N` for N GPUs
(the Snakemake train rules do that when a job has more than one GPU).

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
    gen.add_argument("--init-image", default=None, help="img2img / SDEdit: edit this image instead of sampling noise")
    gen.add_argument("--strength", type=float, default=0.8, help="img2img: int(strength * steps) denoising steps run")
    gen.add_argument("--mask", default=None, help="img2img: grayscale mask, white = may change, black = kept")
    tr = sub.add_parser("train", help="train one stage of a model entry (run under `accelerate launch` for >1 GPU)")
    tr.add_argument("stage", help="a training stage of the entry's model family (ldm2d: vae, diffusion)")
    tr.add_argument("--model-config", required=True, help="the model entry (`models: <name>:` block) as JSON/YAML")
    tr.add_argument("--manifest", required=True, help="dataset manifest (split, image, prompt columns)")
    tr.add_argument("--results", required=True, help="folder the manifest's image paths are relative to")
    tr.add_argument("--work", required=True, help="work folder: checkpoints (resumed from), caches, logs")
    tr.add_argument("--out", required=True, help="output: VAE folder (vae) or pipeline folder (diffusion)")
    tr.add_argument("--summary", required=True, help="summary JSON written at the end")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--input", action="append", default=[], metavar="STAGE=DIR",
                    help="an earlier stage's folder, e.g. vae=models/m/vae (repeat for several)")
    tr.add_argument("--vae", default=None, help="same as --input vae=DIR")
    chk = sub.add_parser("check-config", help="YAML syntax of config files, with file and line (Snakemake's "
                                              "message for a --configfile syntax error names neither)")
    chk.add_argument("files", nargs="+")
    app = sub.add_parser("app", help="the interactive app over a results folder (Streamlit, on 127.0.0.1)")
    app.add_argument("--results", default="results", help="the workflow's results folder")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--address", default="127.0.0.1", help="listen address (default: this machine only)")
    app.add_argument("--configfile", nargs="*", default=["config.yaml"],
                     help="config files whose datasets' preprocess settings the Enhance page offers")
    return parser


def check_config(args) -> str:
    from .workflow import yaml_syntax_error

    problems = [p for p in (yaml_syntax_error(f) for f in args.files) if p]
    if problems:
        raise MedsynthError("\n".join(problems))
    return f"{len(args.files)} config file(s): YAML syntax ok"


def run_app(args) -> int:
    from .app import launch

    configs = [c for c in args.configfile if Path(c).is_file()]
    return launch(args.results, port=args.port, address=args.address, config_files=configs)


def train(args) -> Path:
    import yaml

    from .training.launch import run_stage_here

    path = Path(args.model_config)
    if not path.is_file():
        raise MedsynthError(f"model config {path} does not exist")
    model_cfg = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    if not isinstance(model_cfg, dict):
        raise MedsynthError(f"model config {path} is not a mapping (give one `models:` entry)")
    inputs = {}
    for item in args.input + ([f"vae={args.vae}"] if args.vae else []):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise MedsynthError(f"--input {item!r}: give STAGE=DIR")
        inputs[name] = Path(folder)
    run_stage_here(args.stage, model_cfg, Path(args.manifest), Path(args.results), Path(args.work), Path(args.out),
                   Path(args.summary), args.seed, inputs)
    return Path(args.summary)


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
    if args.init_image:
        return _img2img(args, components, seeds, [out.parent / n for n in names])
    if args.mask:
        raise MedsynthError("--mask needs --init-image (masks apply to img2img)")
    return generate_to_dir(components, [args.prompt] * args.count, seeds, out.parent, batch_size=args.batch_size,
                           names=names, skip_existing=False, num_inference_steps=args.steps, guidance_scale=args.guidance,
                           negative_prompt=args.negative_prompt)


def _img2img(args, components: dict, seeds: list[int], paths: list[Path]) -> list[Path]:
    import numpy as np
    import torch
    from PIL import Image

    from .io import atomic_path
    from .sampling import img2img
    from .sampling.txt2img import to_pil
    from .training.data import FileImages

    vae, unet = components["vae"], components["unet"]
    size = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    if not Path(args.init_image).is_file():
        raise MedsynthError(f"--init-image {args.init_image} does not exist")
    image = FileImages([args.init_image], size, vae.config.in_channels, resize=True).get([0])
    mask = None
    if args.mask:
        if not Path(args.mask).is_file():
            raise MedsynthError(f"--mask {args.mask} does not exist")
        m = Image.open(args.mask).convert("L").resize((size, size), Image.NEAREST)
        mask = torch.from_numpy(np.asarray(m, dtype=np.float32) / 255.0)[None, None]
    written = []
    for start in range(0, len(seeds), args.batch_size):
        chunk = seeds[start:start + args.batch_size]
        result = img2img(**components, images=image.expand(len(chunk), -1, -1, -1), prompts=[args.prompt] * len(chunk),
                         seeds=chunk, strength=args.strength, num_inference_steps=args.steps,
                         guidance_scale=args.guidance, negative_prompt=args.negative_prompt,
                         mask=None if mask is None else mask.expand(len(chunk), -1, -1, -1))
        for img, path in zip(result.images, paths[start:start + len(chunk)]):
            with atomic_path(path) as tmp:
                to_pil(img).save(tmp, format="PNG")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            for path in generate(args):
                print(path)
        elif args.command == "train":
            print(train(args))
        elif args.command == "check-config":
            print(check_config(args))
        elif args.command == "app":
            return run_app(args)
    except MedsynthError as err:
        print(f"medsynth: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
