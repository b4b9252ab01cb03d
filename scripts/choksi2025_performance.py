"""Step: the poster's generation-performance and component tables, measured on this machine at the run's scale.

Latency: one image per call through the engine's sampler (sampling.txt2img, DDIM, classifier-free guidance: the
null and the prompt half in one batched U-Net forward per step), after warm-up.
The CPU this runs on is usually shared, so the wall-clock numbers are noisy (stated in the provenance)."""
import os
import platform

import torch

from medsynth.devices import job_device
from medsynth.errors import MedsynthError
from medsynth.io import read_json, write_json
from medsynth.metrics.timing import measure_latency, peak_memory
from medsynth.papers.choksi2025 import PAPER, ROW
from medsynth.pipeline_io import load_pipeline
from medsynth.report.cells import make_cell
from medsynth.sampling import make_scheduler, txt2img
from medsynth.training.stages import count_parameters
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
device = job_device()
pipe = load_pipeline(p.pipeline, device=device)
components = dict(vae=pipe.vae, unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                  scheduler=make_scheduler("ddim", pipe.scheduler.config))
train = read_json(snakemake.input.diffusion_summary)
lat = p.latency
size = pipe.vae.config.sample_size
prompt = [p.prompt]
base = {"dataset": p.dataset, "model": p.model, "scale": p.scale, "seed": p.seed, "resolution": f"{size}x{size}",
        "device": f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
                  f"load average {os.getloadavg()[0]:.1f}: shared machine, timings noisy)",
        "guidance_scale": lat["guidance_scale"]}


def run(steps):
    return lambda: txt2img(**components, prompts=prompt, seeds=[p.seed], num_inference_steps=steps,
                           guidance_scale=lat["guidance_scale"])


cells = []
timing = {}
for steps, column, unit in ((20, "Latency 20 DDIM steps (ms)", 1000.0), (100, "Latency 100 DDIM steps (s)", 1.0)):
    t = measure_latency(run(steps), warmup=lat["warmup"], repeats=lat["repeats"], device=device)
    timing[steps] = t
    cells.append(make_cell(PAPER, "performance", ROW, column, t["seconds_per_call"] * unit,
                           std=t["seconds_per_call_std"] * unit,
                           provenance={**base, "n": t["repeats"], "method": f"wall clock per 1-image call, "
                                       f"{steps} DDIM steps incl. text encoding and VAE decoding, mean of "
                                       f"{t['repeats']} after {t['warmup']} warm-up"}))
with peak_memory(device) as mem:
    run(20)()
cells.append(make_cell(PAPER, "performance", ROW, "Memory (MB)", mem["peak_bytes"] / 2 ** 20, provenance={
    **base, "n": 1, "method": f"peak during one 20-step call: {mem['method']}"}))
params = train["parameters"]
total = params["vae"] + params["unet"] + params["text_encoder"]
trainable = params["vae"] + params["unet"] + params["text_projection"]  # VAE (stage 1) + U-Net + projection
count = {"dataset": p.dataset, "model": p.model, "scale": p.scale, "seed": p.seed, "n": 1,
         "method": "sum of parameter tensor sizes of the saved components"}
cells.append(make_cell(PAPER, "performance", ROW, "Parameters total (M)", total / 1e6,
                       provenance={**count, "method": count["method"] + ": VAE + U-Net + text encoder"}))
cells.append(make_cell(PAPER, "performance", ROW, "Parameters trainable (M)", trainable / 1e6,
                       provenance={**count, "method": count["method"] + ": VAE + U-Net + text projection"}))
for column, value in (("VAE", params["vae"]), ("U-Net", params["unet"]),
                      ("Text encoder total", params["text_encoder"]),
                      ("Text trainable (projection)", params["text_projection"])):
    cells.append(make_cell(PAPER, "components", ROW, column, value / 1e6, provenance=count))
if count_parameters(pipe.unet) != params["unet"]:
    raise MedsynthError("the saved U-Net differs from the trained one: retrain (rule train_diffusion)")
if p.scale == "paper":  # a Δ against the poster means something only for the paper-scale run
    cells = [{**c, "reproduces": "Published model"} for c in cells]
write_json(cells, snakemake.output.cells)
log.info("performance: %s", {c["column"]: round(c["value"], 4) for c in cells})
