"""Step: sample one prompt set from a trained diffusers pipeline folder (classifier-free guidance, one seed per
image, DDIM unless the prompt set names another sampler): PNGs + samples.csv."""
from pathlib import Path

import torch

from medsynth.io import read_table, write_table
from medsynth.sampling.prompt_sets import resolve_prompt_set
from medsynth.pipeline_io import load_pipeline
from medsynth.sampling import generate_to_dir, make_scheduler
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
spec = snakemake.params.spec
table = resolve_prompt_set(spec, read_table(snakemake.input.manifest) if spec.get("splits") else None)
device = "cuda" if torch.cuda.is_available() and int(snakemake.resources.get("gpu", 0) or 0) > 0 else "cpu"
pipe = load_pipeline(Path(snakemake.input.unet).parent.parent, device=device)
sampler = spec.get("sampler", "ddim")
components = dict(vae=pipe.vae, unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                  scheduler=make_scheduler(sampler, pipe.scheduler.config))
out = Path(snakemake.output.table).parent
files = [f"{i:05d}.png" for i in range(len(table))]
# skip_existing=False: PNGs are not declared outputs, so files of an older model must never be kept.
generate_to_dir(components, table["prompt"].astype(str).tolist(), table["seed"].astype(int).tolist(), out,
                batch_size=spec.get("batch_size", 8), names=files, skip_existing=False,
                num_inference_steps=spec["steps"], guidance_scale=spec["guidance_scale"],
                negative_prompt=spec.get("negative_prompt", ""))
table.insert(0, "file", files)
table["steps"], table["guidance_scale"], table["sampler"] = spec["steps"], spec["guidance_scale"], sampler
write_table(table, snakemake.output.table)
log.info("%d images from %d prompts (%d %s steps, guidance %.2f, %s)", len(table), table["prompt"].nunique(),
         spec["steps"], sampler, spec["guidance_scale"], device)
