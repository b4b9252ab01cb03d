"""Helpers the Snakefile uses at DAG-build time: config checks, shard arithmetic, target lists, script logging.

Kept free of heavy imports (torch, cv2) so that building a DAG of hundreds of jobs stays fast.
"""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from .adapters import ADAPTERS, KINDS
from .errors import MedsynthError

PHANTOM_ADAPTERS = {"phantom_cxr", "phantom_ct"}
REAL_ADAPTERS = {"mimic_cxr", "chexpert", "openi", "covid_radiography", "aiib23"}


def config_error_message(err) -> str:
    """One line naming the offending key, from a jsonschema ValidationError."""
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config error at '{where}': {err.message}"


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Validate against the JSON schema (filling defaults) plus the checks a schema cannot express."""
    import jsonschema
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path), set_default=True)
    except Exception as exc:  # snakemake wraps the jsonschema error; recover it for a one-line message
        cause = exc
        while cause is not None and not isinstance(cause, jsonschema.ValidationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            best = jsonschema.exceptions.best_match([cause])
            raise MedsynthError(config_error_message(best)) from None
        raise MedsynthError(f"config error: {exc}".splitlines()[0]) from None
    fractions = config.get("split", {}).get("fractions")
    if fractions and abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise MedsynthError(f"config error at 'split.fractions': fractions sum to {sum(fractions.values())}, not 1")
    for name in config.get("classifier", {}).get("datasets", []):
        if name not in config["datasets"]:
            raise MedsynthError(f"config error at 'classifier.datasets': '{name}' is not a dataset in 'datasets'")
    for name, ds in config["datasets"].items():
        if ds["adapter"] in REAL_ADAPTERS:
            root = ds.get("root")
            if not root:
                raise MedsynthError(f"config error at 'datasets.{name}.root': required for adapter {ds['adapter']}")
            if not Path(root).expanduser().is_dir():
                raise MedsynthError(f"dataset '{name}' missing: datasets.{name}.root = {root} is not a folder")
        if ds["adapter"] in PHANTOM_ADAPTERS and "phantom" not in config:
            raise MedsynthError(f"config error at 'datasets.{name}': the phantom adapters need a 'phantom' block")
    check_references(config)
    if real_datasets(config):
        from .ids import resolve_key

        resolve_key(config.get("pseudonym") or {}, real_data=True)  # before any job: no secret, no real-data run


def check_references(config: dict) -> None:
    """Names one config entry gives another (a model's dataset, its base model, a paper's model) must exist: else
    the run would fail at DAG time with a MissingInputException that does not name the key."""
    datasets, models = config["datasets"], config.get("models") or {}
    for m, entry in models.items():
        refs = [(f"models.{m}.dataset", entry.get("dataset"), datasets, "dataset in 'datasets'"),
                (f"models.{m}.pretrained.model", (entry.get("pretrained") or {}).get("model"), models,
                 "entry in 'models'"),
                (f"models.{m}.diffusion.train.distill_corpus.dataset",
                 (((entry.get("diffusion") or {}).get("train") or {}).get("distill_corpus") or {}).get("dataset"),
                 datasets, "dataset in 'datasets'")]
        for key, name, known, what in refs:
            if name is not None and name not in known:
                raise MedsynthError(f"config error at '{key}': '{name}' is not a {what} "
                                    f"(known: {', '.join(sorted(known)) or 'none'})")
    paper_model = (config.get("choksi2025") or {}).get("model")
    if paper_model and models and paper_model not in models:
        raise MedsynthError(f"config error at 'choksi2025.model': '{paper_model}' is not an entry in 'models'")


def yaml_syntax_error(path: str | Path) -> str | None:
    """One line naming file, line and column of a YAML syntax error (Snakemake's own message names neither)."""
    import yaml

    try:
        yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"config file {path}{where}: {err.problem or err.context}"
    except yaml.YAMLError as err:
        return f"config file {path}: {str(err).splitlines()[0]}"
    return None


def real_datasets(config: dict) -> list[str]:
    """The datasets read from a user's copy of a real cohort (not the phantom or data shipped in packages)."""
    return [name for name, ds in config["datasets"].items() if ds["adapter"] in REAL_ADAPTERS]


def kind(config: dict, dataset: str) -> str:
    return KINDS[config["datasets"][dataset]["adapter"]]


def shard_ids(n_rows: int, shard_size: int) -> list[str]:
    """ceil(n / size) shard names, zero-padded so they sort."""
    return [f"{i:05d}" for i in range(max(1, math.ceil(n_rows / shard_size)))]


def shard_slice(shard: str, shard_size: int) -> slice:
    i = int(shard)
    return slice(i * shard_size, (i + 1) * shard_size)


def table_rows(path: str | Path) -> int:
    """Row count from Parquet metadata, without reading the table."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def phantom_shards(config: dict) -> list[str]:
    ph = config["phantom"]
    return shard_ids(ph["n_patients"], ph["shard_size"])


def image_datasets(config: dict) -> list[str]:
    return [d for d in config["datasets"] if kind(config, d) == "image"]


def clahe_datasets(config: dict) -> list[str]:
    return [d for d in image_datasets(config)
            if config["datasets"][d].get("preprocess", {}).get("clahe", {}).get("enabled", False)]


def uses_phantom(config: dict) -> bool:
    return any(ds["adapter"] in PHANTOM_ADAPTERS for ds in config["datasets"].values())


def script_logging(snakemake) -> logging.Logger:
    """Send a script's logging (and uncaught errors) to the rule's log file."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger(f"medsynth.{snakemake.rule}")

    def excepthook(exc_type, exc, tb):
        logger.error("failed", exc_info=(exc_type, exc, tb))
        sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = excepthook
    return logger


def keeps_caches(config: dict) -> bool:
    """config keep_caches; unset (null): kept at scale paper, gone once used at the CPU scales (demo, ci)."""
    keep = config.get("keep_caches")
    return config.get("scale", "demo") == "paper" if keep is None else bool(keep)


def drop_training_caches(config: dict) -> str | None:
    """After a successful run that does not keep caches (`keeps_caches`): remove the training caches (they are no
    rule's output; a later run that trains again rebuilds what it needs). Returns what was removed, for the log."""
    import shutil

    from .training import training_cache_dir

    folder = training_cache_dir(config["results"])
    if keeps_caches(config) or not folder.is_dir():
        return None
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    return f"removed the training caches {folder} ({size / 1e6:.0f} MB; keep_caches: true keeps them)"


__all__ = ["ADAPTERS", "KINDS", "validate_config", "shard_ids", "shard_slice", "table_rows", "script_logging",
           "keeps_caches", "drop_training_caches"]
