"""Does a vq_ar model's prompt steer the image, and what would make it? Trains a model entry's stages with the
repo's stage code on a finished run's data, with config overrides, then samples the entry's designed one-finding
prompts (prompt set `findings`) and lets the dataset's judge score them: the judge AUC of the prompted finding
against the other prompts' images, and the LM's text reliance (NLL per image token of held-out images given their
own report vs another's). This is how the LM rows of bench/README.md's "What would make chen2024's prompt steer the
image?" were measured.

    python bench/vq_ar_prompting.py                                          # the entry as configured (--name demo)
    python bench/vq_ar_prompting.py --name no_restarts --vq-set '{"codebook_restart": {"every": 0}, "train": {"learning_rate": 4.0e-4}}'
    python bench/vq_ar_prompting.py --name judge1235 --vq bench/out/vq_ar_prompting/demo/vq \\
        --data judge --lm-set '{"keypatch_prompt": null, "train": {"max_steps": 900, "batch_size": 8}}'

--data judge trains the LM on the judge cohort's train split with template reports written from its labels: a
probe of scale only (the judge trained on those films, so its scores of such a model are not a fair evaluation).
Writes bench/out/vq_ar_prompting/<name>/ (the trained stages, the samples) and bench/out/vq_ar_prompting_<name>.json.
The entry comes from --configfile (default config.yaml: the demo's; give the run's own files for another run).
Without the run's outputs it says so and exits 0.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# One sentence per phantom finding, present / absent (absent ones negated, as the phantom's reports do).
TEMPLATES = {"cardiomegaly": ("The cardiac silhouette is enlarged.", "Heart size is normal."),
             "consolidation": ("Focal consolidation in the lung.", "No focal consolidation."),
             "atelectasis": ("Platelike atelectasis.", ""),
             "nodule": ("Pulmonary nodule or mass in the lung.", "No pulmonary nodules."),
             "emphysema": ("Hyperinflated lungs with emphysema.", ""),
             "effusion": ("There is a pleural effusion.", "No pleural effusion."),
             "pneumothorax": ("There is a pneumothorax.", "No pneumothorax.")}


def template_report(row) -> str:
    return "FINDINGS: " + " ".join(t for k, (yes, no) in TEMPLATES.items() if (t := yes if row[k] == 1 else no))


def _merge(base: dict, over: dict) -> dict:
    from snakemake.utils import update_config

    out = copy.deepcopy(base)
    for k, v in over.items():              # a top-level null removes a key (e.g. keypatch_prompt)
        if v is None:
            out.pop(k, None)
    update_config(out, {k: v for k, v in over.items() if v is not None})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--configfile", nargs="+", default=[str(ROOT / "config.yaml")],
                    help="the run's config files, merged in order as snakemake does")
    ap.add_argument("--model", default="chen2024")
    ap.add_argument("--name", default="demo", help="the run's folder name (default demo: the entry as configured)")
    ap.add_argument("--vq", default=None, help="a trained VQ folder to reuse (default: train one with --vq-set)")
    ap.add_argument("--vq-set", default="{}", help="JSON merged into the entry's vq block")
    ap.add_argument("--lm-set", default="{}", help="JSON merged into the entry's lm block (null removes a key)")
    ap.add_argument("--data", choices=["dataset", "judge"], default="dataset")
    ap.add_argument("--n-per-prompt", type=int, default=16)
    ap.add_argument("--guidance", type=float, default=1.0)
    args = ap.parse_args(argv)

    results = Path(args.results)
    from snakemake.utils import update_config

    config = {}
    for f in args.configfile:
        update_config(config, __import__("yaml").safe_load(Path(f).read_text()) or {})
    entry = config["models"][args.model]
    card = results / "models" / "classifier" / entry["dataset"]
    manifest = results / "data" / entry["dataset"] / "manifest.parquet"
    if not (card / "model.safetensors").is_file() or not manifest.is_file():
        print(f"no judge or dataset for {args.model} under {results}: run the pipeline first")
        return 0

    import pandas as pd
    import torch

    from medsynth.families import vq_ar
    from medsynth.io import read_table, write_table
    from medsynth.metrics.scoring import load_scorer, score_samples
    from medsynth.training.launch import run_stage_here

    torch.set_num_threads(1)
    out = ROOT / "bench" / "out" / "vq_ar_prompting" / args.name
    out.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(entry)
    cfg["vq"] = _merge(cfg["vq"], json.loads(args.vq_set))
    cfg["lm"] = _merge(cfg["lm"], json.loads(args.lm_set))
    if args.data == "judge":
        rows = read_table(results / "raw" / "phantom_judge" / entry["dataset"] / "manifest.parquet")
        rows = rows[rows["split"] != "val"].assign(
            prompt=lambda d: d.apply(template_report, axis=1),
            image=lambda d: f"raw/phantom_judge/{entry['dataset']}/" + d["image"]).reset_index(drop=True)
        manifest = out / "judge_manifest.parquet"
        write_table(rows, manifest)
    summaries = {}
    vq_dir = Path(args.vq) if args.vq else out / "vq"
    if not args.vq:
        summaries["vq"] = run_stage_here("vq", cfg, manifest, results, out / "work" / "vq", vq_dir,
                                         out / "vq_train.json", config["seed"])
    summaries["lm"] = run_stage_here("lm", cfg, manifest, results, out / "work" / "lm", out / "lm",
                                     out / "lm_train.json", config["seed"], {"vq": vq_dir})

    spec = entry["prompt_sets"]["findings"]
    scorer = load_scorer("classifier", card / "model.safetensors", card / "model.json")
    table = pd.DataFrame([{"prompt": text, "seed": int(spec.get("seed", 3000)) + s, "file": f"{name}_{s}.png",
                           **{label: 0 for label in scorer.labels}, **spec["labels"][name]}
                          for name, text in spec["prompts"].items() for s in range(args.n_per_prompt)])
    samples = out / "samples"
    samples.mkdir(exist_ok=True)
    vq_ar.sample(vq_ar.load(out / "lm"), table, samples, {"batch_size": 16, "guidance_scale": args.guidance}, results)
    scored = score_samples(scorer, table, samples)
    record = {"name": args.name, "model": args.model, "data": args.data, "vq": str(vq_dir), "vq_cfg": cfg["vq"],
              "lm_cfg": cfg["lm"], "guidance_scale": args.guidance, "n_per_prompt": args.n_per_prompt,
              "scorer": scorer.provenance, "vq_summary": {k: v for k, v in summaries.get("vq", {}).items()
                                                          if k in ("codes_used", "train_l1", "steps")},
              "text_reliance": summaries["lm"].get("text_reliance"), "lm_steps": summaries["lm"]["steps"],
              "designed_prompts_auc": {k: v["auc"] for k, v in scored["generated"].items()
                                       if isinstance(v, dict) and v.get("auc") is not None}}
    (out.parent.parent / f"vq_ar_prompting_{args.name}.json").write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps({k: record[k] for k in ("name", "text_reliance", "designed_prompts_auc")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
