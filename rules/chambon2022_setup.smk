# Setup of rules/chambon2022.smk: the study's settings and paths from the config, and the input functions
# its rules use (kept apart from the rules, as snakemake --lint asks).

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
