# chambon2022 Studies 3-6: adapting the base text-to-image model (Table 4 FID, Table 5 classifier on samples).
# Each strategy is a models: entry (pretrained: {model: <base>}, few-shot rows:) trained and sampled by the generic
# rules (train.smk, sample.smk); here: real class references (one job per class x feature space), one evaluation
# job per strategy (FID + domain distance per prompt, Table 5 metrics, sample grid) and one job for the cells.

include: "chambon2022_adapt_setup.smk"  # the study's settings, paths and input functions


if C2A_ON:
    PAPER_CELLS["chambon2022"].append(f"{C2A_EVAL}/cells.json")
    PAPER_FIGURES["chambon2022"] += [f"{C2A_FIG}/adapt_samples_{m}.png" for m in C2A_MODELS]
    if C2A_STUDY["scorer"] == "classifier":  # the page prints the judge's own held-out AUCs
        PAPER_JUDGES["chambon2022"].append(f"{R}/models/classifier/{C2A_STUDY['dataset']}/model.json")

    rule chambon2022_adapt_reference:
        input:
            unpack(c2a_reference_inputs),
        output:
            cache_output(f"{R}/cache/chambon2022/adapt/reference_{{space}}_{{klass}}.npz"),
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
            prompts=lambda wc: c2a_prompts(wc.model),
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
            models=c2a_study_models(),
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
