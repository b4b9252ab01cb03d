# siddiqui2023: generative visual attribution. A joint (U-Net + text encoder) DreamBooth fine-tune of a latent
# diffusion model (models: entry config["siddiqui2023"]["model"], generic train rules), SDEdit counterfactuals and
# disease induction (generic edit_images rule, rules/edit.smk), VA maps scored against the phantom's lesion masks,
# and Tables 6.1-6.3 / 8.1; `snakemake siddiqui2023` builds its report page.
include: "siddiqui2023_setup.smk"  # the paper's settings, paths and input functions


rule siddiqui2023_tables:
    # Tables 6.1-6.3 and 8.1 (+ diversity among seeds): FID / SSIM / MS-SSIM of counterfactuals and inductions
    input:
        unpack(sd_fid_inputs),
        manifest=lambda wc: f"{R}/data/{sd_dataset()}/manifest.parquet",
        counterfactual=lambda wc: sd_edits("counterfactual"),
        zero_shot=lambda wc: sd_edits("zero_shot"),
    output:
        cells=f"{SD_OUT}/table_cells.json",
    params:
        **sd_params(),
        cache=lambda wc, output: str(Path(results_of(output.cells, 2), "cache", "metrics")),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("siddiqui2023_tables"),
    benchmark:
        benchpath("siddiqui2023_tables")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/siddiqui2023_tables.py"


rule siddiqui2023_va:
    # VA maps (|counterfactual - original|, lung-masked, null arm, classifier gradient saliency) vs lesion masks
    input:
        unpack(sd_va_inputs),
    output:
        scores=f"{SD_OUT}/va_scores.csv",
        cells=f"{SD_OUT}/va_cells.json",
        figure=report(f"{SD_FIG}/va_maps.png", category="siddiqui2023"),
    params:
        **sd_params(),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("siddiqui2023_va"),
    benchmark:
        benchpath("siddiqui2023_va")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/siddiqui2023_va.py"


rule siddiqui2023_figures:
    # counterfactual grids at each strength: diseased -> healthy, disease induction (localised), zero-shot
    input:
        counterfactual=lambda wc: sd_edits("counterfactual"),
        induction=lambda wc: sd_edits("induction"),
        zero_shot=lambda wc: sd_edits("zero_shot"),
        manifest=lambda wc: f"{R}/data/{sd_dataset()}/manifest.parquet",
    output:
        counterfactual=report(f"{SD_FIG}/counterfactual_grid.png", category="siddiqui2023"),
        induction=report(f"{SD_FIG}/induction_grid.png", category="siddiqui2023"),
    params:
        **sd_params(),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("siddiqui2023_figures"),
    benchmark:
        benchpath("siddiqui2023_figures")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/siddiqui2023_figures.py"


if SD:
    PAPER_CELLS["siddiqui2023"] += [f"{SD_OUT}/table_cells.json", f"{SD_OUT}/va_cells.json"]
    PAPER_FIGURES["siddiqui2023"] += [f"{SD_FIG}/{n}.png" for n in ("counterfactual_grid", "induction_grid",
                                                                    "va_maps")]
    PAPER_JUDGES["siddiqui2023"].append(f"{R}/models/classifier/{sd_dataset()}/model.json")  # the saliency baseline's


rule siddiqui2023:
    input:
        f"{R}/report/siddiqui2023.html",
        f"{SD_OUT}/va_scores.csv",
