# Setup of rules/chambon2022_adapt.smk: the study's settings and paths from the config, and the input functions
# its rules use (kept apart from the rules, as snakemake --lint asks).

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


def c2a_prompts(model):
    return C2A.prompt_names_of(config["models"][model])


def c2a_evaluate_inputs(wildcards):
    files = {"samples": f"{R}/samples/{wildcards.model}/{C2A.STUDY_SET}/samples.csv"}
    for space in ("fid", "domain"):
        for klass in sorted({C2A.PROMPTS[s][1] for s in c2a_prompts(wildcards.model)}):
            files[f"ref_{space}_{klass}"] = f"{R}/cache/chambon2022/adapt/reference_{space}_{klass}.npz"
    files.update(c2a_backbone_inputs(C2A_STUDY["fid"]["backbone"], "fid"))
    files.update(c2a_backbone_inputs(C2A_STUDY["domain"]["backbone"], "domain"))
    files.update(c2a_backbone_inputs(C2A_STUDY["scorer"], "scorer"))
    return files


def c2a_params(step):
    return {"study": C2A_STUDY, "step": step, "seed": config["seed"], "scale": config["scale"],
            "resize": f"bicubic{c2a_image_size()}" if C2A_ON else "native"}


def c2a_study_models():
    """The strategies' model entries with only their study prompt set: the tables' params, so adding another prompt
    set (or another model) does not re-plan them."""
    out = {}
    for entry in C2A_STUDY.get("strategies") or []:
        model = entry.get("model")
        if model in config.get("models", {}):
            sets = config["models"][model].get("prompt_sets") or {}
            out[model] = {**model_entry(model), "prompt_sets": {k: v for k, v in sets.items() if k == C2A.STUDY_SET}}
    return out
