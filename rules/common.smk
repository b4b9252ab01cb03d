# Config validation (before any job runs) and the path helpers every rule file uses.
from pathlib import Path

from medsynth import families
from medsynth import workflow as wf
from medsynth.report import screenshot
from medsynth.errors import MedsynthError

try:
    wf.validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
    # Every pretrained model the run loads is there (local folder / HF cache) before the first job; checked by the
    # Snakemake that plans the run, not again in each job (a cluster job re-reads the workflow).
    from medsynth.models import hub as _hub

    if not (workflow.remote_exec or workflow.subprocess_exec):
        _hub.check_run_models(config)
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
# Training gates everything downstream (a paper's longest chain starts with its training stages, and every scored
# table waits for the judge): among jobs that are ready, Snakemake starts these first (rules train_*, judge_*), so a
# 2-core demo does not finish on one long training job alone.
TRAIN_PRIORITY = 10


def _job_path(kind, suffix, rule_name, wildcards):
    parts = [f"{{{w}}}" for w in wildcards] or ["all"]
    return str(Path(R, kind, rule_name, *parts)) + suffix


def logpath(rule_name, *wildcards):
    """Log file of one job: <results>/logs/<rule>/<wildcard values>.log"""
    return _job_path("logs", ".log", rule_name, wildcards)


def benchpath(rule_name, *wildcards):
    """Snakemake benchmark of one job: <results>/benchmarks/<rule>/<wildcard values>.tsv"""
    return _job_path("benchmarks", ".tsv", rule_name, wildcards)


def cache_output(path):
    """Statistics written only for the jobs that read them -> temp() (removed once those have all run), unless
    the config keeps caches (keep_caches; unset: kept at scale paper only)."""
    return path if wf.keeps_caches(config) else temp(path)


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


# --- model entries of every family (rules/train.smk, rules/sample.smk; medsynth.families) ---
def model_entry(name):
    """Model entry `name` as the train/sample/edit rules' `params.model`, without its prompt and edit sets: adding or
    changing a prompt set must not retrain the model or resample the other sets (each set is its own param)."""
    return {k: v for k, v in config.get("models", {}).get(name, {}).items() if k not in ("prompt_sets", "edit_sets")}


def model_cfg(wildcards):
    return model_entry(wildcards.model)


# Families trained by the generic train_model_stage rule; ldm2d keeps its own rules (train_vae, train_diffusion).
GENERIC_KINDS = [k for k in families.FAMILIES if k != "ldm2d"]


def model_family(model):
    return families.family_of(config["models"][model])


def models_of_kind(*kinds):
    return [m for m, entry in config.get("models", {}).items() if families.kind_of(entry) in kinds]


def model_folder(model):
    """The folder a model entry's family loads to sample or edit: its last stage's."""
    return f"{R}/models/{model}/{model_family(model).sample_dir}"


def model_final(wildcards):
    """The done-marker of a model entry's last training stage (what sampling and editing wait for)."""
    fam = model_family(wildcards.model)
    return f"{R}/models/{wildcards.model}/{fam.marker(fam.stages[-1])}"


def model_earlier_stages(wildcards):
    """Done-markers of the stages before {stage} of a model entry (generic train_model_stage rule)."""
    fam = model_family(wildcards.model)
    before = fam.stages[: fam.stages.index(wildcards.stage)]
    return {s: f"{R}/models/{wildcards.model}/{fam.marker(s)}" for s in before}


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
