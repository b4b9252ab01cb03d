# chen2024: settings, paths and input functions used by rules/chen2024.smk (kept apart: snakemake --lint
# wants rules and functions in separate files).
C24 = config.get("chen2024", {})
C24_MODEL = C24.get("model", "chen2024")
C24_ENTRY = config.get("models", {}).get(C24_MODEL, {})
C24_DATASET = C24_ENTRY.get("dataset", "")
C24_OUT = f"{R}/eval/chen2024"
C24_FIG = f"{R}/figures/chen2024"
C24_EVAL_SPLITS = C24.get("eval_splits", ["val", "test"])
C24_SPLIT = "+".join(C24_EVAL_SPLITS)   # the held-out reports of Table 1 and the test images of Table 2
C24_SIZE = C24_ENTRY.get("image_size", 0)
C24_FID = (f"{R}/eval/generative/{C24_MODEL}/reports/{C24_SPLIT}/{C24_SPLIT}/"
           f"{C24.get('fid', {}).get('backbone', 'inception-random')}__"
           f"{C24.get('fid', {}).get('resize', f'bicubic{C24_SIZE}')}.json")
C24_VOCAB_DATASETS = C24.get("vocabulary", {}).get("datasets", [C24_DATASET])
# the model's designed finding prompts (named prompts with labels), scored beside the report-drawn sets
C24_FINDING_SET = "findings" if (C24_ENTRY.get("prompt_sets") or {}).get("findings", {}).get("labels") else None


def c24_judge_card():
    """The card of the classifier that scores chen2024's generated images (on a phantom dataset: the judge)."""
    return f"{R}/models/classifier/{C24_DATASET}/model.json"


def c24_finding_auc_inputs(wildcards):
    scored = f"{R}/eval/scored/{C24_MODEL}/{{}}/{{}}/classifier.json"
    out = {"scored": scored.format("reports", C24_SPLIT), "scored_train": scored.format("synthetic_train", "train"),
           "lm_summary": f"{R}/models/{C24_MODEL}/lm_train.json", "card": c24_judge_card()}
    if C24_FINDING_SET:
        out["scored_findings"] = scored.format(C24_FINDING_SET, "all")
    return out


def c24_params():
    return {"dataset": C24_DATASET, "model": C24_MODEL, "scale": config["scale"], "seed": config["seed"]}
