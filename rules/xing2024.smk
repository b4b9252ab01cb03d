# xing2024 (DGM-VLC): 3D CT from a lung/airway mask + clinical text. Composes the generic train_model_stage /
# sample_images rules (five `models:` entries of families pix2pix3d and ddpm3d, config xing2024.rows) and the generic
# volume_metrics rule (slice-wise FID/KID/IS, patch-wise FID/KID) into Table 1, plus the Figure-4 attribute-toggle
# heatmaps scored against the phantom's emphysema regions; `snakemake xing2024` builds its report page.

include: "xing2024_setup.smk"  # the paper's settings, paths and input functions


if XG:
    for _row, _m in XG_ROWS.items():
        if _m not in config.get("models", {}):
            raise WorkflowError(f"config error at 'xing2024.rows.{_row}': '{_m}' is not an entry of 'models'")
    if XG_HEAT and XG_HEAT["model"] not in config.get("models", {}):
        raise WorkflowError(f"config error at 'xing2024.heatmap.model': '{XG_HEAT['model']}' is not in 'models'")


rule xing2024_table1_row:
    input:
        slice=lambda wc: xg_metrics(wc.model, "slice"),
        patch=lambda wc: xg_metrics(wc.model, "patch"),
    output:
        cells=f"{XG_OUT}/table1/{{model}}.json",
    params:
        row=lambda wc: next(r for r, m in XG_ROWS.items() if m == wc.model),
        model=lambda wc: wc.model,
        dataset=XG_DATASET,
        scale=config["scale"],
        results=lambda wc, output: results_of(output.cells, 3),
    log:
        logpath("xing2024_table1_row", "model"),
    benchmark:
        benchpath("xing2024_table1_row", "model")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/xing2024_table1.py"


rule xing2024_heatmaps:
    input:
        model=lambda wc: xg_final(XG_HEAT["model"]),
        manifest=f"{R}/data/{XG_DATASET}/manifest.parquet",
    output:
        scores=f"{XG_OUT}/heatmap_scores.json",
        cells=f"{XG_OUT}/heatmap_cells.json",
        figure=report(f"{XG_FIG}/attribute_heatmaps.png", category="xing2024"),
    params:
        spec=XG_HEAT,
        model=XG_HEAT.get("model"),
        model_cfg=lambda wc: config["models"][XG_HEAT["model"]],
        folder=lambda wc: model_folder(XG_HEAT["model"]),
        rules=config["datasets"].get(XG_DATASET, {}).get("tabular_rules") or "phantom",
        spacing=lambda wc: (config["datasets"][XG_DATASET].get("volume") or {}).get("spacing"),
        crop=lambda wc: (config["datasets"][XG_DATASET].get("volume") or {}).get("crop"),
        dataset=XG_DATASET,
        scale=config["scale"],
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("xing2024_heatmaps"),
    benchmark:
        benchpath("xing2024_heatmaps")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda wc: config["models"][XG_HEAT["model"]].get("gpu", 0),
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/xing2024_heatmaps.py"


rule xing2024_sample_figure:
    input:
        samples=[f"{R}/samples/{m}/{XG_SET}/samples.csv" for m in XG_ROWS.values()],
    output:
        figure=report(f"{XG_FIG}/sample_slices.png", category="xing2024"),
    params:
        rows=list(XG_ROWS),
        results=lambda wc, output: results_of(output.figure, 2),
    log:
        logpath("xing2024_sample_figure"),
    benchmark:
        benchpath("xing2024_sample_figure")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/xing2024_sample_figure.py"


if XG:
    PAPER_CELLS["xing2024"] += [f"{XG_OUT}/table1/{m}.json" for m in XG_ROWS.values()]
    PAPER_FIGURES["xing2024"] += [f"{XG_FIG}/sample_slices.png"]
    if XG_HEAT:
        PAPER_CELLS["xing2024"] += [f"{XG_OUT}/heatmap_cells.json"]
        PAPER_FIGURES["xing2024"] += [f"{XG_FIG}/attribute_heatmaps.png"]


rule xing2024:
    input:
        f"{R}/report/xing2024.html",
