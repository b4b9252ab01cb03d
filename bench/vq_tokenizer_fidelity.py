"""Can a vq_ar model's image tokens carry the findings at all? Encodes a finished run's held-out images with the
model's VQ tokenizer, decodes them, and lets the dataset's judge score the reconstructions beside the real images at
the model's size (the same classifier, labels and AUC with 95 % bootstrap interval as the report pages use). A
tokenizer whose reconstructions score at chance caps any prompt -> finding effect of the LM on top of it.

    python bench/vq_tokenizer_fidelity.py [--results results] [--model chen2024] [--vq results/models/chen2024/vq]
                                          [--cohort judge --splits test]
                                          # writes bench/out/vq_tokenizer_fidelity_<model>[_judge].json

Without the run's outputs it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def _aucs(per: dict) -> dict:
    return {k: {"auc": v["auc"], "ci": v.get("auc_ci"), "positives": v.get("positives")}
            for k, v in per.items() if isinstance(v, dict) and v.get("auc") is not None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--model", default="chen2024")
    ap.add_argument("--vq", default=None, help="a VQ folder to test instead of the model's own (default: its vq/)")
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--cohort", choices=["dataset", "judge"], default="dataset",
                    help="judge: the judge cohort's images of those splits (hundreds of balanced positives the VQ and "
                         "the judge never trained on) instead of the dataset's few held-out ones")
    args = ap.parse_args(argv)
    results = Path(args.results)
    vq_dir = Path(args.vq) if args.vq else results / "models" / args.model / "vq"
    card = results / "models" / "classifier"
    if not vq_dir.is_dir():
        print(f"no trained VQ tokenizer at {vq_dir}: run the model's pipeline first")
        return 0

    import torch
    import yaml
    from diffusers import VQModel

    from medsynth.families.vq_ar import decode_codes, encode_codes
    from medsynth.io import read_table
    from medsynth.metrics.scoring import load_scorer, score_samples
    from medsynth.sampling.txt2img import to_pil
    from medsynth.training.stages import _images

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    entry = config["models"][args.model]
    dataset, size = entry["dataset"], int(entry["image_size"])
    weights, card = card / dataset / "model.safetensors", card / dataset / "model.json"
    if not weights.is_file():
        print(f"no judge for {dataset} under {card.parent}: run the pipeline first")
        return 0
    vq = VQModel.from_pretrained(vq_dir).eval()
    root = results / "raw" / "phantom_judge" / dataset if args.cohort == "judge" else results
    manifest = root / "manifest.parquet" if args.cohort == "judge" else results / "data" / dataset / "manifest.parquet"
    if not manifest.is_file():
        print(f"no {args.cohort} manifest at {manifest}: run the pipeline first")
        return 0
    rows = read_table(manifest)
    rows = rows[rows["split"].isin(args.splits.split(","))].reset_index(drop=True)
    images = _images(rows, root, size, 1)
    scorer = load_scorer("classifier", weights, card)
    out = {"model": args.model, "vq": str(vq_dir), "cohort": args.cohort, "splits": args.splits, "n": len(rows),
           "image_size": size,
           "tokens_per_image": None, "codes_used": None, "scorer": scorer.backbone}
    with tempfile.TemporaryDirectory() as tmp:
        arms = {"real": Path(tmp) / "real", "reconstructed": Path(tmp) / "recon"}
        for folder in arms.values():
            folder.mkdir()
        files, used = [f"{i:05d}.png" for i in range(len(rows))], []
        l1 = 0.0
        for start in range(0, len(rows), 16):
            batch = images.get(range(start, min(start + 16, len(rows))))
            codes = encode_codes(vq, batch)
            used.append(codes)
            recon = decode_codes(vq, codes)
            l1 += float((recon - batch).abs().sum())
            for j in range(len(batch)):
                to_pil((batch[j] + 1) / 2).save(arms["real"] / files[start + j])
                to_pil((recon[j] + 1) / 2).save(arms["reconstructed"] / files[start + j])
        codes = torch.cat(used)
        out.update(tokens_per_image=int(codes.shape[1]), codes_used=int(codes.unique().numel()),
                   l1=l1 / (len(rows) * size * size))
        table = rows.assign(file=files).drop(columns=["source_image"], errors="ignore")
        for arm, folder in arms.items():
            out[arm] = _aucs(score_samples(scorer, table, folder, root)["generated"])
    suffix = "" if args.cohort == "dataset" else f"_{args.cohort}"
    dest = ROOT / "bench" / "out" / f"vq_tokenizer_fidelity_{args.model}{suffix}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"{args.model} on {len(rows)} {args.cohort} images ({args.splits}): {out['tokens_per_image']} tokens/image, {out['codes_used']} codes used, L1 {out['l1']:.4f}; "
          f"judge AUC real -> reconstructed:")
    for label in out["real"]:
        rec = out["reconstructed"].get(label, {}).get("auc")
        print(f"  {label:18s} {out['real'][label]['auc']:.2f} -> {rec if rec is None else round(rec, 2)} "
              f"({out['real'][label]['positives']} positives)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
