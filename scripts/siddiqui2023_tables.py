"""Step: siddiqui2023 Tables 6.1-6.3 and 8.1 (+ diversity among seeds) from the edit sets: FID between real and
edited image sets (configured backbone, labelled when a stand-in), SSIM / MS-SSIM of each source image and its
healthy counterfactual, MS-SSIM among the counterfactuals of one image across seeds."""
from pathlib import Path

import numpy as np
import torch

from medsynth.io import read_table, write_json
from medsynth.metrics.generative import rule_evaluator
from medsynth.metrics.backbones import metrics_settings
from medsynth.metrics.pairs import ms_ssim, ms_ssim_diversity, ssim
from medsynth.papers import siddiqui2023 as S
from medsynth.report.cells import make_cell
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p, inp = snakemake.params, snakemake.input
study, size, results = p.study, int(p.image_size), Path(p.results)
strength = float(study["table_strength"])
manifest = read_table(inp.manifest)
settings = {**metrics_settings(snakemake.config), **{k: v for k, v in study["fid"].items() if k == "dims"}}
resize = f"bicubic{size}"
ev = rule_evaluator(study["fid"]["backbone"], resize, settings, p.seed, p.cache,
                    weights=getattr(inp, "fid_weights", None), card=getattr(inp, "fid_card", None))
healthy = [results / f for f in manifest.loc[manifest[study["healthy_label"]].astype(float).eq(1.0), "image"]]
cf = read_table(inp.counterfactual)
cf_dir = Path(inp.counterfactual).parent
pair_prov = {"dataset": p.dataset, "scale": p.scale, "seed": p.seed, "model": p.model,
             "strength": strength, "steps": int(cf["steps"].iloc[0]), "guidance_scale": float(cf["guidance_scale"].iloc[0]),
             "sampler": str(cf["sampler"].iloc[0])}
fid_prov = {**pair_prov, **ev.provenance}   # SSIM / MS-SSIM cells use no feature network: pair_prov only
rows = study.get("rows", {})


set_stats = {}  # each image set through the backbone once (the healthy set is in five comparisons)


def fid(a, b):
    # a Frechet distance needs 2+ images a side; fewer (a tiny cohort's rare class) -> no number, counts recorded
    return S.fid_between(ev, a, b, resize, memo=set_stats) if min(len(a), len(b)) >= 2 else None


def fid_method(value, what):
    return f"FID: {what}" + ("" if value is not None else " -- not computed: fewer than 2 images on one side")


def row_of(label):
    # measured row name and the paper row it stands beside (same class name, other dataset)
    return f"{label} (phantom)", rows.get(label)


cells = []
at = cf[np.isclose(cf["strength"].astype(float), strength)]
scales = S.ms_ssim_scales(size)
for label, g in at.groupby("source_label", sort=False):
    row, pub = row_of(label)
    real = [results / f for f in g["source_image"].unique()]
    gen = [cf_dir / f for f in g["file"]]
    n = {"n_real_abnormal": len(real), "n_generated": len(gen), "n_real_healthy": len(healthy)}
    fid_gen, fid_real, fid_h = fid(real, gen), fid(real, healthy), fid(healthy, gen)
    diff = None if fid_gen is None or fid_real is None else abs(fid_real - fid_gen)
    for table, col, val, what in (
            ("table6_1", "vs generated healthy", fid_gen, "real abnormal vs their healthy counterfactuals"),
            ("table6_1", "vs real healthy", fid_real, "real abnormal vs real healthy (No Finding) images"),
            ("table6_1", "relative absolute difference", diff, "|FID vs real healthy - FID vs generated healthy|"),
            ("table6_2", "FID", fid_h, "real healthy vs healthy counterfactuals of this class")):
        cells.append(make_cell(S.PAPER, table, row, col, val, reproduces=pub,
                                 provenance={**fid_prov, **n, "n": len(gen), "method": fid_method(val, what)}))
    pairs = [(S.read_gray(results / s, size), S.read_gray(cf_dir / f, size))
             for s, f in zip(g["source_image"], g["file"])]
    for col, fn in (("MS-SSIM", lambda a, b: ms_ssim(a, b, 1.0, scales)), ("SSIM", lambda a, b: ssim(a, b, 1.0))):
        vals = [fn(a, b) for a, b in pairs]
        cells.append(make_cell(S.PAPER, "table6_3", row, col, float(np.mean(vals)), std=float(np.std(vals)),
                                 reproduces=pub, provenance={**pair_prov, "n": len(vals), "ms_ssim_scales": scales,
                                 "method": f"{col} of each abnormal image vs its healthy counterfactual ({size} px), "
                                           "mean +- std over (image, seed)"}))
    div = [ms_ssim_diversity([S.read_gray(cf_dir / f, size) for f in h["file"]], 1.0, scales)[0]
           for _, h in g.groupby("source_id") if len(h) > 1]
    if div:
        cells.append(make_cell(S.PAPER, "diversity", row, "MS-SSIM among seeds", float(np.mean(div)),
                                 std=float(np.std(div)), provenance={**pair_prov, "n": len(div), "ms_ssim_scales": scales,
                                 "method": "MS-SSIM over all pairs of one image's counterfactuals (different seeds), "
                                           "mean over images; lower = more diverse"}))

zs = read_table(inp.zero_shot)
zs_dir = Path(inp.zero_shot).parent
zs_at = zs[np.isclose(zs["strength"].astype(float), strength)]
gen = [zs_dir / f for f in zs_at["file"]]
target = study["zero_shot_label"]
real_t = [results / f for f in manifest.loc[manifest[target].astype(float).eq(1.0), "image"]]
zprov = {**fid_prov, "steps": int(zs["steps"].iloc[0]), "guidance_scale": float(zs["guidance_scale"].iloc[0]),
         "prompts": sorted(zs_at["prompt"].unique()), "n_real_target": len(real_t), "n_real_healthy": len(healthy),
         "n_generated": len(gen)}
for row, ref, what in ((f"Real {target.lower()} vs generated {target.lower()}", real_t, f"real {target} images"),
                       (f"Real healthy vs generated {target.lower()}", healthy, "real healthy images")):
    pub = row if row in ("Real cardiomegaly vs generated cardiomegaly", "Real healthy vs generated cardiomegaly") else None
    val = fid(ref, gen)
    cells.append(make_cell(S.PAPER, "table8_1", f"{row} (phantom)", "FID", val, reproduces=pub, provenance={
        **zprov, "n": len(gen), "method": fid_method(val, f"{what} vs healthy images edited towards the unseen "
                                                          "prompt (zero-shot)")}))
write_json(cells, snakemake.output.cells)
log.info("%d cells (%s, %d healthy reference images)", len(cells), ev.info.backbone, len(healthy))
