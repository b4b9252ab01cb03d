# chambon2022 Study 2: text encoders compared by CheXpert@k on report impressions (Tables 2 and 3, t-SNE figures).
# One job selects the reports, one job per encoder embeds them with all its extraction methods (one model load),
# one job scores the baselines, one job assembles the report cells.
# `snakemake chambon2022_text` builds the study and the chambon2022 report page.

include: "chambon2022_setup.smk"  # the study's settings, paths and input functions


if C2T_ON:
    PAPER_CELLS["chambon2022"].append(f"{C2T_EVAL}/cells.json")
    PAPER_FIGURES["chambon2022"] += [f"{C2T_FIG}/text_per_class.png"] + [
        f"{C2T_FIG}/tsne_{e}.png" for e in C2T_ENCODERS]

    rule chambon2022_text_select:
        input:
            manifest=f"{R}/data/{C2T_STUDY['dataset']}/manifest.parquet",
        output:
            reports=f"{C2T_EVAL}/reports.parquet",
            summary=f"{C2T_EVAL}/selection.json",
        params:
            **c2t_params("select"),
        log:
            logpath("chambon2022_text_select"),
        benchmark:
            benchpath("chambon2022_text_select")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_text_study.py"

    rule chambon2022_text_encoder:
        input:
            reports=f"{C2T_EVAL}/reports.parquet",
            summary=f"{C2T_EVAL}/selection.json",
        output:
            results=f"{C2T_EVAL}/encoder_{{encoder}}.json",
            embeddings=f"{R}/cache/chambon2022/text/{{encoder}}.npz",
        params:
            **c2t_params("encoder"),
        wildcard_constraints:
            encoder="|".join(C2T_ENCODERS),
        log:
            logpath("chambon2022_text_encoder", "encoder"),
        benchmark:
            benchpath("chambon2022_text_encoder", "encoder")
        threads: 2
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_text_study.py"

    rule chambon2022_text_baselines:
        input:
            reports=f"{C2T_EVAL}/reports.parquet",
            summary=f"{C2T_EVAL}/selection.json",
        output:
            results=f"{C2T_EVAL}/baselines.json",
        params:
            **c2t_params("baselines"),
        log:
            logpath("chambon2022_text_baselines"),
        benchmark:
            benchpath("chambon2022_text_baselines")
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_text_study.py"

    rule chambon2022_text_tsne:
        input:
            reports=f"{C2T_EVAL}/reports.parquet",
            results=f"{C2T_EVAL}/encoder_{{encoder}}.json",
            embeddings=f"{R}/cache/chambon2022/text/{{encoder}}.npz",
        output:
            report(f"{C2T_FIG}/tsne_{{encoder}}.png", category="chambon2022"),
        params:
            study=C2T_STUDY,
            seed=config["seed"],
            perplexity=C2T_STUDY["tsne_perplexity"],
        wildcard_constraints:
            encoder="|".join(C2T_ENCODERS),
        log:
            logpath("chambon2022_text_tsne", "encoder"),
        benchmark:
            benchpath("chambon2022_text_tsne", "encoder")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_text_figures.py"

    rule chambon2022_text_tables:
        input:
            results=[f"{C2T_EVAL}/encoder_{e}.json" for e in C2T_ENCODERS] + [f"{C2T_EVAL}/baselines.json"],
        output:
            cells=f"{C2T_EVAL}/cells.json",
            per_class=f"{C2T_EVAL}/per_class.csv",
            figure=report(f"{C2T_FIG}/text_per_class.png", category="chambon2022"),
        params:
            **c2t_params("tables"),
        log:
            logpath("chambon2022_text_tables"),
        benchmark:
            benchpath("chambon2022_text_tables")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/evaluate.yaml"
        script:
            "../scripts/chambon2022_text_study.py"

    rule chambon2022_text:
        input:
            f"{R}/report/chambon2022.html",
            f"{C2T_EVAL}/cells.json",
            [f"{C2T_FIG}/tsne_{e}.png" for e in C2T_ENCODERS],


# One target for all six studies: everything the studies register for the paper page (Study 1:
# rules/chambon2022_vae.smk; Studies 3-6: rules/chambon2022_adapt.smk; Study 2: above).
rule chambon2022:
    input:
        f"{R}/report/chambon2022.html",
        lambda wc: PAPER_CELLS["chambon2022"],
        lambda wc: PAPER_FIGURES["chambon2022"],
