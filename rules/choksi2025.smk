# choksi2025: text -> CXR latent diffusion from scratch. Composes the generic train/sample rules (model entry
# config["choksi2025"]["model"]) and the generic generative_metrics rule (FID, rules/evaluate.smk) into the poster's
# tables and figures; `snakemake choksi2025` builds its report page.

include: "choksi2025_setup.smk"  # the study's settings, paths and input functions


rule choksi2025_quality:
    input:
        samples=ch_samples("reports"),
        manifest=f"{R}/data/{CH_DATASET}/manifest.parquet",
        fid=CH_FID,
    output:
        cells=f"{CH_OUT}/quality_cells.json",
    params:
        **ch_params(),
        eval_splits=CH_EVAL_SPLITS,
        image_size=CH_IMAGE_SIZE,
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("choksi2025_quality"),
    benchmark:
        benchpath("choksi2025_quality")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/choksi2025_quality.py"


rule choksi2025_performance:
    input:
        unet=f"{R}/models/{CH_MODEL}/pipeline/unet/config.json",
        diffusion_summary=f"{R}/models/{CH_MODEL}/diffusion_train.json",
    output:
        cells=f"{CH_OUT}/performance_cells.json",
    params:
        **ch_params(),
        latency=CH.get("latency", {}),
        prompt=CH.get("latency", {}).get("prompt", ""),
        pipeline=lambda wc, input: str(Path(input.unet).parents[1]),
    log:
        logpath("choksi2025_performance"),
    benchmark:
        benchpath("choksi2025_performance")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/choksi2025_performance.py"


rule choksi2025_classifier:
    input:
        samples=ch_samples("reports"),
        weights=f"{R}/models/classifier/{CH_DATASET}/model.safetensors",
        card=f"{R}/models/classifier/{CH_DATASET}/model.json",
    output:
        json=f"{CH_OUT}/classifier_auc.json",
        figure=report(f"{CH_FIG}/classifier_auc.png", category="choksi2025"),
    params:
        **ch_params(),
        results=lambda wc, input: results_of(input.weights, 3),
    log:
        logpath("choksi2025_classifier"),
    benchmark:
        benchpath("choksi2025_classifier")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/choksi2025_classifier.py"


rule choksi2025_figures:
    input:
        examples=ch_samples("examples"),
        effusion=ch_samples("effusion"),
        manifest=f"{R}/data/{CH_DATASET}/manifest.parquet",
        vae_summary=f"{R}/models/{CH_MODEL}/vae_train.json",
        diffusion_summary=f"{R}/models/{CH_MODEL}/diffusion_train.json",
    output:
        grid=report(f"{CH_FIG}/sample_grid.png", category="choksi2025"),
        effusion=report(f"{CH_FIG}/effusion_text_control.png", category="choksi2025"),
        curves=report(f"{CH_FIG}/training_curves.png", category="choksi2025"),
        effect=f"{CH_OUT}/effusion_effect.json",
    params:
        **ch_params(),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("choksi2025_figures"),
    benchmark:
        benchpath("choksi2025_figures")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/choksi2025_figures.py"


if CH:
    PAPER_CELLS["choksi2025"] += [f"{CH_OUT}/quality_cells.json", f"{CH_OUT}/performance_cells.json"]
    PAPER_FIGURES["choksi2025"] += [f"{CH_FIG}/{n}.png" for n in
                                    ("sample_grid", "effusion_text_control", "training_curves", "classifier_auc")]
    PAPER_JUDGES["choksi2025"].append(f"{R}/models/classifier/{CH_DATASET}/model.json")


rule choksi2025:
    input:
        f"{R}/report/choksi2025.html",
        f"{CH_OUT}/effusion_effect.json",
        f"{CH_OUT}/classifier_auc.json",
