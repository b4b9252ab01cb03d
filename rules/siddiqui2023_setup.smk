# siddiqui2023: settings, paths and input functions used by rules/siddiqui2023.smk (kept apart: snakemake --lint
# wants rules and functions in separate files).
SD = config.get("siddiqui2023", {})
SD_MODEL = SD.get("model", "siddiqui2023")
SD_OUT = f"{R}/eval/siddiqui2023"
SD_FIG = f"{R}/figures/siddiqui2023"
SD_SETS = SD.get("edit_sets", {})   # role -> edit set of the model entry


def sd_dataset():
    return config["models"][SD_MODEL]["dataset"]


def sd_image_size():
    # the model's resolution: its own image_size, else that of the entry it was fine-tuned from
    entry = config["models"][SD_MODEL]
    base = (entry.get("pretrained") or {}).get("model")
    return int(entry.get("image_size") or config["models"].get(base, {}).get("image_size") or 512)


def sd_edits(role):
    return f"{R}/edits/{SD_MODEL}/{SD_SETS[role]}/edits.csv"


def sd_params():
    return {"dataset": sd_dataset() if SD else "", "model": SD_MODEL, "scale": config["scale"], "seed": config["seed"],
            "study": SD, "image_size": sd_image_size() if SD else 0}


def sd_fid_inputs(wildcards):
    files = mb.rule_inputs(config, R, SD["fid"]["backbone"], sd_dataset(), "siddiqui2023.fid.backbone")
    return {f"fid_{k}": v for k, v in files.items()}


def sd_va_inputs(wildcards):
    files = {"manifest": f"{R}/data/{sd_dataset()}/manifest.parquet", "edits": sd_edits("counterfactual"),
             "null": sd_edits("null_arm"), "weights": f"{R}/models/classifier/{sd_dataset()}/model.safetensors",
             "card": f"{R}/models/classifier/{sd_dataset()}/model.json"}
    lungs = (SD.get("va") or {}).get("lung_masks")
    if lungs:
        files["lungs"] = f"{R}/data/{lungs}/manifest.parquet"
    return files
