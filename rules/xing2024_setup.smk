# xing2024: settings, paths and input functions used by rules/xing2024.smk (kept apart: snakemake --lint
# wants rules and functions in separate files).
XG = config.get("xing2024") or {}
XG_OUT = f"{R}/eval/xing2024"
XG_FIG = f"{R}/figures/xing2024"
XG_ROWS = dict(XG.get("rows") or {})
XG_SET = XG.get("promptset", "test")
XG_SPLIT = XG.get("eval_split", "test")
XG_DATASET = XG.get("dataset", "phantom_ct")
XG_HEAT = XG.get("heatmap") or {}
def xg_metrics(model, mode):
    backbone = XG.get("slice_backbone", "inception-random") if mode == "slice" else XG.get("patch_backbone",
                                                                                            "med3d-random")
    return (f"{R}/eval/volumes/{XG_DATASET}/{XG_SPLIT}/vs/{model}/{XG_SET}/{XG_SPLIT}/{mode}__{backbone}.json")


def xg_final(model):
    fam = model_family(model)
    return f"{R}/models/{model}/{fam.marker(fam.stages[-1])}"
