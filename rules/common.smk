# Config validation (before any job runs) and the path helpers every rule file uses.
from pathlib import Path

from medsynth import workflow as wf
from medsynth.errors import MedsynthError

try:
    wf.validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except MedsynthError as err:
    raise WorkflowError(str(err)) from None

R = config["results"]
DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS) if DATASETS else "NONE",
    shard=r"\d{5}",


def logpath(rule_name, *wildcards):
    """Log file of one job: results/logs/<rule>/<wildcards>.log"""
    return f"{R}/logs/{rule_name}/" + "/".join(f"{{{w}}}" for w in wildcards) + (".log" if wildcards else "all.log")


def benchpath(rule_name, *wildcards):
    return f"{R}/benchmarks/{rule_name}/" + "/".join(f"{{{w}}}" for w in wildcards) + (".tsv" if wildcards else "all.tsv")


def all_targets(wildcards):
    targets = [f"{R}/data/{d}/summary.json" for d in DATASETS]
    targets += [f"{R}/figures/{d}/clahe_before_after.png" for d in wf.clahe_datasets(config)]
    if wf.uses_phantom(config):
        targets += [f"{R}/raw/phantom/prevalence.csv", f"{R}/figures/phantom/findings.png"]
    return targets
