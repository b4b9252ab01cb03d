# Config validation (before any job runs) and the path helpers every rule file uses.
from pathlib import Path

from medsynth import workflow as wf
from medsynth.report import screenshot
from medsynth.errors import MedsynthError

try:
    wf.validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except MedsynthError as err:
    raise WorkflowError(str(err)) from None

R = config["results"]
DATASETS = list(config["datasets"])
PAPERS = ["chambon2022", "chen2024", "choksi2025", "siddiqui2023", "xing2024"]
# Filled by each paper's .smk: the measured-cell JSON files and figures each paper's report shows.
PAPER_CELLS = {paper: [] for paper in PAPERS}
PAPER_FIGURES = {paper: [] for paper in PAPERS}
# ... and the cards of the classifiers (judges) that scored its images: the page prints their held-out AUCs.
PAPER_JUDGES = {paper: [] for paper in PAPERS}


def _job_path(kind, suffix, rule_name, wildcards):
    parts = [f"{{{w}}}" for w in wildcards] or ["all"]
    return str(Path(R, kind, rule_name, *parts)) + suffix


def logpath(rule_name, *wildcards):
    """Log file of one job: <results>/logs/<rule>/<wildcard values>.log"""
    return _job_path("logs", ".log", rule_name, wildcards)


def benchpath(rule_name, *wildcards):
    """Snakemake benchmark of one job: <results>/benchmarks/<rule>/<wildcard values>.tsv"""
    return _job_path("benchmarks", ".tsv", rule_name, wildcards)


def config_names():
    """The run's config files as the report prints them: relative to the workflow when they live in it."""
    base = Path(workflow.basedir).resolve()
    names = []
    for c in workflow.configfiles:
        p = Path(c).resolve()
        names.append(str(p.relative_to(base)) if p.is_relative_to(base) else str(c))
    return names


def results_of(path, depth):
    """The results folder, recovered from a rule's own input/output path (no hard-coded prefix in params)."""
    return str(Path(path).parents[depth])


def ingest_inputs(wildcards):
    if config["datasets"][wildcards.dataset]["adapter"] in wf.PHANTOM_ADAPTERS:
        return [f"{R}/raw/phantom/cohort.parquet"]
    return []


def dataset_shards(wildcards):
    """The shard folders of a dataset: ceil(rows / shard_size), counted from the ingest checkpoint's manifest."""
    manifest = checkpoints.ingest.get(dataset=wildcards.dataset).output[0]
    size = config["datasets"][wildcards.dataset]["shard_size"]
    return expand(
        f"{R}/preprocessed/{{dataset}}/shards/{{shard}}",
        dataset=wildcards.dataset,
        shard=wf.shard_ids(wf.table_rows(manifest), size),
    )


def all_targets(wildcards):
    targets = [f"{R}/data/{d}/summary.json" for d in DATASETS] + [f"{R}/report/index.html"]
    targets += [f"{R}/eval/classifier/{d}/test_metrics.json" for d in config["classifier"]["datasets"]]
    if screenshot.find_browser():  # the screenshot is a convenience, taken where Chromium is installed
        targets += [f"{R}/report/index.png"] + [f"{R}/report/{p}.png" for p in PAPERS if PAPER_CELLS[p]]
    targets += [f"{R}/figures/{d}/clahe_before_after.png" for d in wf.clahe_datasets(config)]
    if wf.uses_phantom(config):
        targets += [f"{R}/raw/phantom/prevalence.csv", f"{R}/figures/phantom/findings.png"]
    return targets


# --- the classifier that scores images, "the judge" (rules/judge.smk, rules/evaluate.smk train_classifier) ---
from medsynth.classifier import judge as J


def classifier_training_manifest(wildcards):
    # A phantom dataset's classifier trains on the judge's own cohort; a real dataset's on its own training split.
    if J.judged_by_cohort(config, wildcards.dataset):
        return f"{R}/raw/phantom_judge/{wildcards.dataset}/manifest.parquet"
    return f"{R}/data/{wildcards.dataset}/manifest.parquet"


# --- latent-diffusion model entries (rules/train.smk, rules/sample.smk) ---
def model_cfg(wildcards):
    return config["models"][wildcards.model]


def model_dataset_manifest(wildcards):
    return f"{R}/data/{config['models'][wildcards.model]['dataset']}/manifest.parquet"


def model_manifest(wildcards):
    # An entry with `rows:` trains on its selected rows (rule select_rows), otherwise on its dataset's manifest.
    if config["models"][wildcards.model].get("rows"):
        return f"{R}/models/{wildcards.model}/rows.parquet"
    return model_dataset_manifest(wildcards)


def model_vae(wildcards):
    # A from-scratch entry's diffusion stage needs its trained VAE; a `pretrained:` entry brings its own.
    if config["models"][wildcards.model].get("pretrained"):
        return []
    return f"{R}/models/{wildcards.model}/vae/config.json"


def model_base(wildcards):
    # `pretrained: {model: <entry>}` starts from another entry's trained pipeline.
    base = (config["models"][wildcards.model].get("pretrained") or {}).get("model")
    return [f"{R}/models/{base}/pipeline/unet/config.json"] if base else []


def model_distill_corpus(wildcards):
    # projection_distill's extra texts (`diffusion.train.distill_corpus: {dataset}`): that dataset's manifest.
    corpus = config["models"][wildcards.model]["diffusion"]["train"].get("distill_corpus") or {}
    return [f"{R}/data/{corpus['dataset']}/manifest.parquet"] if corpus.get("dataset") else []


def model_gpus(wildcards):
    # GPUs per job come from the model entry (0 in the CPU demo); the SLURM profile overrides per rule.
    return config["models"][wildcards.model].get("gpu", 0)


# --- choksi2025 (rules/choksi2025.smk) ---
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


# --- chambon2022 Study 2: text encoders by CheXpert@k (rules/chambon2022.smk) ---
C2T_STUDY = config.get("chambon2022", {}).get("text_study") or {}
C2T_ON = bool(C2T_STUDY) and C2T_STUDY.get("enabled", True)
C2T_EVAL = f"{R}/eval/chambon2022/text"
C2T_FIG = f"{R}/figures/chambon2022"
C2T_ENCODERS = {}
if C2T_ON:
    from medsynth.papers import chambon2022_text as C2T

    if C2T_STUDY["dataset"] not in config["datasets"]:
        raise WorkflowError(f"config error at 'chambon2022.text_study.dataset': '{C2T_STUDY['dataset']}' is not a "
                            "dataset in 'datasets'")
    try:
        C2T_ENCODERS = C2T.encoder_entries(C2T_STUDY)
    except MedsynthError as err:
        raise WorkflowError(str(err)) from None


def c2t_params(step):
    return {"study": C2T_STUDY, "step": step, "seed": config["seed"], "scale": config["scale"]}


# --- chambon2022 Study 1: VAE reconstruction (rules/chambon2022_vae.smk) ---
C2V_STUDY = config.get("chambon2022", {}).get("vae_study") or {}
C2V_ON = bool(C2V_STUDY) and C2V_STUDY.get("enabled", True)
C2V_EVAL = f"{R}/eval/chambon2022/vae"
C2V_FIG = f"{R}/figures/chambon2022"
C2V_TABLES = {}  # table id (table1 | table6) -> dataset
if C2V_ON:
    from medsynth.papers import chambon2022_vae as C2V

    try:
        C2V_TABLES = C2V.study_tables(C2V_STUDY, config)
        C2V_SIZE = C2V.image_size(C2V_STUDY, config["models"])
        C2V_VAE = C2V.vae_source(config["models"], C2V_STUDY["model"])  # ("trained", entry) | ("pretrained", block)
    except MedsynthError as err:
        raise WorkflowError(str(err)) from None


def c2v_vae(wildcards):
    # The trained VAE of the study's entry (or of the entry it was adapted from); a checkpoint brings its own.
    return f"{R}/models/{C2V_VAE[1]}/vae/config.json" if C2V_VAE[0] == "trained" else []


def c2v_metric_inputs(wildcards):
    # Weights files of the FID backbone and of the classifier (refused at DAG time when missing or not allowed).
    from medsynth.metrics import backbones

    dataset = C2V_TABLES[wildcards.table]
    fid = backbones.rule_inputs(config, R, C2V_STUDY["fid"]["backbone"], dataset)
    scorer = backbones.rule_inputs(config, R, C2V_STUDY["scorer"], dataset)
    return {**{f"fid_{k}": v for k, v in fid.items()}, **{f"scorer_{k}": v for k, v in scorer.items()}}


def c2v_params(step):
    return {"study": C2V_STUDY, "step": step, "seed": config["seed"], "scale": config["scale"]}


# --- chambon2022 Studies 3-6: adaptation strategies -> Tables 4 and 5 (rules/chambon2022_adapt.smk) ---
C2A_STUDY = config.get("chambon2022", {}).get("adapt_study") or {}
C2A_ON = bool(C2A_STUDY) and C2A_STUDY.get("enabled", True)
C2A_EVAL = f"{R}/eval/chambon2022/adapt"
C2A_FIG = f"{R}/figures/chambon2022"
C2A_ACTIVE, C2A_OMITTED, C2A_MODELS = [], [], []
if C2A_ON:
    from medsynth.metrics import backbones as _c2a_mb
    from medsynth.papers import chambon2022_adapt as C2A

    C2A_STUDY = {"negative_label": "No Finding", "positive_label": "Pleural Effusion", "threshold": 0.5,
                 "reference_splits": ["train", "val", "test"], "scorer": "classifier", "grid_per_prompt": 8,
                 "fid": {"backbone": "inception-fid", "dims": 2048}, "domain": {"backbone": "classifier"},
                 **C2A_STUDY}
    if C2A_STUDY["dataset"] not in config["datasets"]:
        raise WorkflowError(f"config error at 'chambon2022.adapt_study.dataset': '{C2A_STUDY['dataset']}' is not a "
                            "dataset in 'datasets'")
    try:
        C2A_ACTIVE, C2A_OMITTED = C2A.study_strategies(C2A_STUDY, config.get("models", {}))
    except MedsynthError as err:
        raise WorkflowError(str(err)) from None
    C2A_MODELS = [e["model"] for e in C2A_ACTIVE]


def c2a_image_size():
    # Generated and real images are compared at adapt_study.image_size, else the strategies' resolution (the base
    # entry's image_size).
    entry = config["models"][C2A_MODELS[0]]
    base = (entry.get("pretrained") or {}).get("model")
    size = C2A_STUDY.get("image_size") or entry.get("image_size") or config["models"].get(base, {}).get("image_size")
    if not size:
        raise WorkflowError("chambon2022.adapt_study: set image_size (the resolution FID compares images at)")
    return int(size)


def c2a_backbone_inputs(backbone, prefix):
    files = _c2a_mb.rule_inputs(config, R, backbone, C2A_STUDY["dataset"])
    return {f"{prefix}_{k}": v for k, v in files.items()}


def c2a_reference_inputs(wildcards):
    backbone = C2A_STUDY["fid"]["backbone"] if wildcards.space == "fid" else C2A_STUDY["domain"]["backbone"]
    files = _c2a_mb.rule_inputs(config, R, backbone, C2A_STUDY["dataset"])
    return {"manifest": f"{R}/data/{C2A_STUDY['dataset']}/manifest.parquet", **files}


def c2a_sets(model):
    return C2A.prompt_sets_of(config["models"][model])


def c2a_evaluate_inputs(wildcards):
    sets = c2a_sets(wildcards.model)
    files = {f"samples_{s}": f"{R}/samples/{wildcards.model}/{s}/samples.csv" for s in sets}
    for space in ("fid", "domain"):
        for klass in sorted({C2A.PROMPT_SETS[s][1] for s in sets}):
            files[f"ref_{space}_{klass}"] = f"{R}/cache/chambon2022/adapt/reference_{space}_{klass}.npz"
    files.update(c2a_backbone_inputs(C2A_STUDY["fid"]["backbone"], "fid"))
    files.update(c2a_backbone_inputs(C2A_STUDY["domain"]["backbone"], "domain"))
    files.update(c2a_backbone_inputs(C2A_STUDY["scorer"], "scorer"))
    return files


def c2a_params(step):
    return {"study": C2A_STUDY, "step": step, "seed": config["seed"], "scale": config["scale"],
            "resize": f"bicubic{c2a_image_size()}" if C2A_ON else "native"}
