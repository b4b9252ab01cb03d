# chambon2022 Studies 3-6: adapting the base text-to-image model (Table 4 FID, Table 5 classifier on samples).
# Each strategy is a models: entry (pretrained: {model: <base>}, few-shot rows:) trained and sampled by the generic
# rules (train.smk, sample.smk); here: real class references (one job per class x feature space), one evaluation
# job per strategy (FID + domain distance per prompt, Table 5 metrics, sample grid) and one job for the cells.

# --- setup: the study's settings and paths, from the config ---
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


if C2A_ON:
    PAPER_CELLS["chambon2022"].append(f"{C2A_EVAL}/cells.json")
    PAPER_FIGURES["chambon2022"] += [f"{C2A_FIG}/adapt_samples_{m}.png" for m in C2A_MODELS]

    rule chambon2022_adapt_reference:
        input:
            unpack(c2a_reference_inputs),
        output:
            f"{R}/cache/chambon2022/adapt/reference_{{space}}_{{klass}}.npz",
        params:
            **c2a_params("reference"),
            splits=C2A_STUDY.get("reference_splits"),
            settings=_c2a_mb.metrics_settings(config) if C2A_ON else {},
            results=lambda wc, input: results_of(input.manifest, 2),
            cache=lambda wc, output: str(Path(output[0]).parents[2] / "metrics"),
        wildcard_constraints:
            space="fid|domain",
            klass="negative|positive",
        log:
            logpath("chambon2022_adapt_reference", "space", "klass"),
        benchmark:
            benchpath("chambon2022_adapt_reference", "space", "klass")
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_adapt.py"

    rule chambon2022_adapt_evaluate:
        input:
            unpack(c2a_evaluate_inputs),
        output:
            record=f"{C2A_EVAL}/{{model}}.json",
            figure=report(f"{C2A_FIG}/adapt_samples_{{model}}.png", category="chambon2022"),
        params:
            **c2a_params("evaluate"),
            sets=lambda wc: c2a_sets(wc.model),
            grid=C2A_STUDY.get("grid_per_prompt", 8),
            settings=_c2a_mb.metrics_settings(config) if C2A_ON else {},
            cache=lambda wc, output: str(Path(output.record).parents[3] / "cache" / "metrics"),
        wildcard_constraints:
            model="|".join(C2A_MODELS),
        log:
            logpath("chambon2022_adapt_evaluate", "model"),
        benchmark:
            benchpath("chambon2022_adapt_evaluate", "model")
        threads: 2
        resources:
            mem_mb=6000,
            runtime=30,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_adapt.py"

    rule chambon2022_adapt_tables:
        input:
            records=[f"{C2A_EVAL}/{m}.json" for m in C2A_MODELS],
        output:
            cells=f"{C2A_EVAL}/cells.json",
            findings=f"{C2A_EVAL}/findings.json",
        params:
            **c2a_params("tables"),
            models=config.get("models", {}),
        log:
            logpath("chambon2022_adapt_tables"),
        benchmark:
            benchpath("chambon2022_adapt_tables")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_adapt.py"

    rule chambon2022_adapt:
        input:
            f"{R}/report/chambon2022.html",
            f"{C2A_EVAL}/cells.json",
            f"{C2A_EVAL}/findings.json",
