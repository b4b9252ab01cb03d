# chambon2022 Study 1: VAE reconstruction of real radiographs (Tables 1 and 6, reconstruction figure).
# Per dataset (table1 | table6 of config chambon2022.vae_study.datasets): one job reconstructs its images with the
# study's VAE, one job scores the pairs (RMSE/PSNR/SSIM, FID, classifier on originals vs reconstructions, feature
# cosine); one job assembles the report cells and figures.
# `snakemake chambon2022_vae` builds the study and the chambon2022 report page.

include: "chambon2022_vae_setup.smk"  # the study's settings, paths and input functions


if C2V_ON:
    PAPER_CELLS["chambon2022"].append(f"{C2V_EVAL}/cells.json")
    PAPER_FIGURES["chambon2022"] += [f"{C2V_FIG}/vae_distributions.png"] + [
        f"{C2V_FIG}/vae_examples_{t}.png" for t in C2V_TABLES]
    if C2V_STUDY["scorer"] == "classifier":  # the page prints the judge's own held-out AUCs
        PAPER_JUDGES["chambon2022"] += [f"{R}/models/classifier/{d}/model.json" for d in C2V_TABLES.values()]

    rule chambon2022_vae_reconstruct:
        input:
            manifest=lambda wc: f"{R}/data/{C2V_TABLES[wc.table]}/manifest.parquet",
            vae=c2v_vae,
        output:
            table=f"{C2V_EVAL}/{{table}}/reconstructions.csv",
            vae=f"{C2V_EVAL}/{{table}}/vae.json",
        params:
            **c2v_params("reconstruct"),
            dataset=lambda wc: C2V_TABLES[wc.table],
            pretrained=C2V_VAE[1] if C2V_VAE[0] == "pretrained" else None,
            image_size=C2V_SIZE,
            results=lambda wc, input: results_of(input.manifest, 2),
        wildcard_constraints:
            table="|".join(C2V_TABLES),
        log:
            logpath("chambon2022_vae_reconstruct", "table"),
        benchmark:
            benchpath("chambon2022_vae_reconstruct", "table")
        threads: 2
        resources:
            mem_mb=8000,
            runtime=60,
            gpu=config["models"][C2V_STUDY["model"]].get("gpu", 0),
        conda:
            "../envs/train.yaml"
        script:
            "../scripts/chambon2022_vae.py"

    rule chambon2022_vae_metrics:
        input:
            unpack(c2v_metric_inputs),
            table=f"{C2V_EVAL}/{{table}}/reconstructions.csv",
            vae=f"{C2V_EVAL}/{{table}}/vae.json",
        output:
            metrics=f"{C2V_EVAL}/{{table}}/metrics.json",
            per_image=f"{C2V_EVAL}/{{table}}/per_image.csv",
        params:
            **c2v_params("metrics"),
            dataset=lambda wc: C2V_TABLES[wc.table],
            image_size=C2V_SIZE,
            config_summary=(f"chambon2022.vae_study: model {C2V_STUDY['model']}, splits "
                            f"{'+'.join(C2V.settings(C2V_STUDY)['splits'])}, n_images <= "
                            f"{C2V.settings(C2V_STUDY)['n_images']}, fid {C2V_STUDY['fid']['backbone']}, "
                            f"scorer {C2V_STUDY['scorer']}"),
            cache=lambda wc, output: str(Path(output.metrics).parents[4] / "cache" / "metrics"),
        wildcard_constraints:
            table="|".join(C2V_TABLES),
        log:
            logpath("chambon2022_vae_metrics", "table"),
        benchmark:
            benchpath("chambon2022_vae_metrics", "table")
        threads: 2
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_vae.py"

    rule chambon2022_vae_tables:
        input:
            metrics=[f"{C2V_EVAL}/{t}/metrics.json" for t in C2V_TABLES],
            per_image=[f"{C2V_EVAL}/{t}/per_image.csv" for t in C2V_TABLES],
            tables=[f"{C2V_EVAL}/{t}/reconstructions.csv" for t in C2V_TABLES],
        output:
            cells=f"{C2V_EVAL}/cells.json",
            distributions=report(f"{C2V_FIG}/vae_distributions.png", category="chambon2022"),
            examples=[report(f"{C2V_FIG}/vae_examples_{t}.png", category="chambon2022") for t in C2V_TABLES],
        params:
            **c2v_params("tables"),
        log:
            logpath("chambon2022_vae_tables"),
        benchmark:
            benchpath("chambon2022_vae_tables")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_vae.py"

    rule chambon2022_vae:
        input:
            f"{R}/report/chambon2022.html",
            f"{C2V_EVAL}/cells.json",
