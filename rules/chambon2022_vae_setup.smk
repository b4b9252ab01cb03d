# Setup of rules/chambon2022_vae.smk: the study's settings and paths from the config, and the input functions
# its rules use (kept apart from the rules, as snakemake --lint asks).

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
    fid = backbones.rule_inputs(config, R, C2V_STUDY["fid"]["backbone"], dataset, "chambon2022.vae_study.fid.backbone")
    scorer = backbones.rule_inputs(config, R, C2V_STUDY["scorer"], dataset, "chambon2022.vae_study.scorer")
    return {**{f"fid_{k}": v for k, v in fid.items()}, **{f"scorer_{k}": v for k, v in scorer.items()}}


def c2v_params(step):
    return {"study": C2V_STUDY, "step": step, "seed": config["seed"], "scale": config["scale"]}
