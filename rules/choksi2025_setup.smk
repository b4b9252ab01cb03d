# Setup of rules/choksi2025.smk: the study's settings and paths from the config, and the input functions
# its rules use (kept apart from the rules, as snakemake --lint asks).

CH = config.get("choksi2025", {})
CH_MODEL = CH.get("model", "choksi2025")
CH_DATASET = config.get("models", {}).get(CH_MODEL, {}).get("dataset", "")
CH_OUT = f"{R}/eval/choksi2025"
CH_FIG = f"{R}/figures/choksi2025"
CH_EVAL_SPLITS = CH.get("eval_splits", ["val", "test"])
CH_IMAGE_SIZE = config.get("models", {}).get(CH_MODEL, {}).get("image_size", 0)
# The quality table's FID: the generic generative_metrics record (rules/evaluate.smk) of the held-out reports'
# samples against the same splits' real images, at the model's resolution (cached reference statistics).
CH_FID = (f"{R}/eval/generative/{CH_MODEL}/reports/{'+'.join(CH_EVAL_SPLITS)}/{'+'.join(CH_EVAL_SPLITS)}/"
          f"{CH.get('fid', {}).get('backbone', 'inception-random')}__"
          f"{CH.get('fid', {}).get('resize', f'bicubic{CH_IMAGE_SIZE}')}.json")


def ch_samples(promptset):
    return f"{R}/samples/{CH_MODEL}/{promptset}/samples.csv"


def ch_params():
    return {"dataset": CH_DATASET, "model": CH_MODEL, "scale": config["scale"], "seed": config["seed"]}
