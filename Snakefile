# medsynth: vision-language conditioned medical image synthesis, from raw data to the papers' tables.
# Stages live in rules/*.smk (rules name data), their steps in scripts/ (thin), the logic in src/medsynth/.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# Snakemake's message for a broken YAML file names neither file nor line: check the default config first.
from medsynth.workflow import yaml_syntax_error

if _err := yaml_syntax_error(Path(workflow.basedir) / "config.yaml"):
    raise WorkflowError(_err)


configfile: "config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS) if DATASETS else "NONE",
    paper="|".join(PAPERS),
    shard=r"\d{5}",
    page=r"[a-z0-9_]+",
    model="|".join(config.get("models", {})) or "NONE",
    promptset=r"[a-z0-9_]+",


include: "rules/phantom.smk"
include: "rules/judge.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/sample.smk"
include: "rules/edit.smk"
include: "rules/evaluate.smk"
include: "rules/choksi2025.smk"
include: "rules/chambon2022.smk"
include: "rules/chambon2022_vae.smk"
include: "rules/chambon2022_adapt.smk"
include: "rules/siddiqui2023.smk"
include: "rules/chen2024.smk"
include: "rules/xing2024.smk"
include: "rules/report.smk"


onsuccess:
    from medsynth.workflow import drop_training_caches

    if _msg := drop_training_caches(config):
        print(_msg)


rule all:
    input:
        all_targets,
    default_target: True
