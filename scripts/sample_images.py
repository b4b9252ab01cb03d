"""Step: sample one prompt set from a trained pipeline (DDIM + classifier-free guidance): PNGs + samples.csv."""
from pathlib import Path

import torch
from PIL import Image

from medsynth.io import atomic_path, read_table, write_table
from medsynth.papers.choksi2025 import load_pipeline, resolve_prompt_set, sample, to_uint8
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
spec = snakemake.params.spec
table = resolve_prompt_set(spec, read_table(snakemake.input.manifest) if spec.get("splits") else None)
pipe = load_pipeline(Path(snakemake.input.unet).parent.parent)
images = to_uint8(sample(pipe, table["prompt"].tolist(), table["seed"].tolist(), steps=spec["steps"],
                         guidance_scale=spec["guidance_scale"], batch_size=spec.get("batch_size", 8)))
out = Path(snakemake.output.table).parent
files = []
for i, img in enumerate(images):
    name = f"{i:05d}.png"
    with atomic_path(out / name) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    files.append(name)
table.insert(0, "file", files)
table["steps"], table["guidance_scale"] = spec["steps"], spec["guidance_scale"]
write_table(table, snakemake.output.table)
log.info("%d images from %d prompts (%d DDIM steps, guidance %.2f)", len(table), table["prompt"].nunique(),
         spec["steps"], spec["guidance_scale"])
