"""Step: chambon2022 Study 1 (VAE reconstruction), one of: reconstruct one dataset's images | score the pairs (RMSE,
PSNR, SSIM, FID, classifier on originals vs reconstructions, feature cosine) | assemble the cells and figures.
The logic lives in medsynth.papers.chambon2022_vae."""
import json
from pathlib import Path

import pandas as pd
import torch

from medsynth.devices import job_device
from medsynth.io import read_table, write_json, write_table
from medsynth.papers import chambon2022_vae as V
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
study, step = V.settings(p.study), p.step

if step == "reconstruct":
    device = job_device(snakemake.resources.get("gpu", 0))
    vae_dir = Path(snakemake.input.vae).parent if snakemake.input.get("vae") else None
    vae, info = V.load_vae(p.pretrained, vae_dir, device=device)
    rows = V.select_images(read_table(snakemake.input.manifest), study["splits"], study["n_images"], p.seed)
    out = Path(snakemake.output.table).parent
    table = V.reconstruct_dataset(rows, p.results, vae, out, p.image_size, p.seed, study["sample_latent"],
                                  study["batch_size"])
    write_table(table, snakemake.output.table)
    write_json({**info, "n": len(table), "image_size": p.image_size, "device": device}, snakemake.output.vae)
    log.info("%s: %d images of %s reconstructed at %d px by %s (%s)", snakemake.wildcards.table, len(table),
             p.dataset, p.image_size, info["vae"], device)
elif step == "metrics":
    from medsynth.metrics.fid import InceptionEvaluator
    from medsynth.metrics.scoring import load_scorer

    folder = Path(snakemake.input.table).parent
    table = read_table(snakemake.input.table)
    originals, recons = V.read_pairs(table, folder)
    per_image = V.pair_metrics(originals, recons)
    fid_cfg = study["fid"]
    ev = InceptionEvaluator.create(backbone=fid_cfg["backbone"], weights=snakemake.input.get("fid_weights"),
                                   dims=fid_cfg.get("dims", 2048), seed=p.seed, cache_dir=p.cache)
    scorer = load_scorer(study["scorer"], snakemake.input.get("scorer_weights"), snakemake.input.get("scorer_card"))
    clf = V.classifier_metrics(scorer, table, folder, study["threshold"])
    per_image["cosine"] = clf.pop("cosine_per_image")
    per_image.insert(0, "id", table["id"])
    metrics = {"table": snakemake.wildcards.table, "dataset": p.dataset, "splits": study["splits"],
               "image_size": p.image_size, "seed": p.seed, "sample_latent": study["sample_latent"],
               "vae": {k: v for k, v in json.loads(Path(snakemake.input.vae).read_text()).items()
                       if k.startswith("vae")}, "config": p.config_summary,
               "pairs": {k: V.summary(per_image[k]) for k in ("rmse", "psnr", "ssim")},
               "fid": V.fid(ev, originals, recons), "classifier": clf}
    write_json(metrics, snakemake.output.metrics)
    write_table(per_image.round(6), snakemake.output.per_image)
    log.info("%s: RMSE %.2f, PSNR %.2f, SSIM %.4f, cosine %s, FID %s (%s), macro AUC orig %s recon %s",
             snakemake.wildcards.table, metrics["pairs"]["rmse"]["mean"], metrics["pairs"]["psnr"]["mean"],
             metrics["pairs"]["ssim"]["mean"], clf["feature_cosine"]["mean"], metrics["fid"]["value"],
             ev.info.backbone, clf["original"]["macro"]["auc"], clf["reconstruction"]["macro"]["auc"])
elif step == "tables":
    cells, per_image = [], {}
    for path, csv in zip(snakemake.input.metrics, snakemake.input.per_image):
        metrics = json.loads(Path(path).read_text())
        cells += V.table_cells(metrics, p.scale)
        per_image[f"{metrics['dataset']} ({metrics['table']})"] = pd.read_csv(csv)
    write_json(cells, snakemake.output.cells)
    V.plot_distributions(per_image, snakemake.output.distributions,
                         f"VAE reconstruction of real radiographs ({p.study['model']}), per image")
    for table_path, csv, figure in zip(snakemake.input.tables, snakemake.input.per_image, snakemake.output.examples):
        V.plot_examples(read_table(table_path), Path(table_path).parent, figure, study["n_examples"],
                        pd.read_csv(csv), f"{Path(table_path).parent.name}: originals, reconstructions, |difference|")
    log.info("%d cells from %d dataset(s)", len(cells), len(per_image))
else:
    raise ValueError(f"unknown step {step!r}")
