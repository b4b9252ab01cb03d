# chen2024: anatomy-pathology prompting + a VQ-token LLM (model family vq_ar, config models: <chen2024.model>).
# Composes the generic rules (train_model_stage, sample_images, generative_metrics, image_quality,
# classifier_metrics) with its own steps: vocabulary mining (Fig. 2), LLM-written prompts and their sample grids,
# Table 1 (FID / NIQE) and Table 2 (classifier trained on synthetic vs real); `snakemake chen2024` builds its page.
include: "chen2024_setup.smk"  # the paper's settings, paths and input functions


rule chen2024_vocabulary:
    input:
        manifests=expand(f"{R}/data/{{d}}/manifest.parquet", d=C24_VOCAB_DATASETS),
    output:
        table=f"{C24_OUT}/vocabulary.csv",
        figure=report(f"{C24_FIG}/vocabulary.png", category="chen2024"),
    params:
        spec=C24.get("vocabulary", {}),
        datasets=C24_VOCAB_DATASETS,
    log:
        logpath("chen2024_vocabulary"),
    benchmark:
        benchpath("chen2024_vocabulary")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/chen2024_vocabulary.py"


rule chen2024_prompts:
    input:
        vocabulary=f"{C24_OUT}/vocabulary.csv",
    output:
        table=f"{C24_OUT}/prompts.csv",
        record=f"{C24_OUT}/prompts.json",
    params:
        spec=C24.get("prompts", {}),
        seed=config["seed"],
    log:
        logpath("chen2024_prompts"),
    benchmark:
        benchpath("chen2024_prompts")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/chen2024_prompts.py"


rule chen2024_keypatches:
    input:
        vq=f"{R}/models/{C24_MODEL}/vq/family.json",
        manifest=f"{R}/data/{C24_DATASET}/manifest.parquet",
        vocabulary=f"{C24_OUT}/vocabulary.csv",
    output:
        table=f"{C24_OUT}/keypatches.csv",
        figure=report(f"{C24_FIG}/keypatches.png", category="chen2024"),
    params:
        **c24_params(),
        top=C24.get("keypatches", {}).get("top", 5),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("chen2024_keypatches"),
    benchmark:
        benchpath("chen2024_keypatches")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/chen2024_keypatches.py"


rule chen2024_prompted:
    input:
        model=f"{R}/models/{C24_MODEL}/lm/family.json",
        prompts=f"{C24_OUT}/prompts.csv",
    output:
        table=f"{R}/samples/{C24_MODEL}/anatomy_pathology/samples.csv",
        grid=report(f"{C24_FIG}/prompt_grid.png", category="chen2024"),
    params:
        model=model_entry(C24_MODEL),
        folder=lambda wc, input: str(Path(input.model).parent),
        spec=C24.get("sampling", {}),
        results=lambda wc, output: results_of(output.table, 3),
    log:
        logpath("chen2024_prompted"),
    benchmark:
        benchpath("chen2024_prompted")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=C24_ENTRY.get("gpu", 0),
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/chen2024_prompted.py"


rule chen2024_table1:
    input:
        fid=C24_FID,
        quality=f"{R}/eval/quality/{C24_MODEL}/reports/{C24_SPLIT}.json",
    output:
        cells=f"{C24_OUT}/table1_cells.json",
    params:
        **c24_params(),
        split=C24_SPLIT,
        image_size=C24_SIZE,
        llm=C24_ENTRY.get("lm", {}).get("llm", {}).get("name"),
    log:
        logpath("chen2024_table1"),
    benchmark:
        benchpath("chen2024_table1")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/chen2024_table1.py"


rule chen2024_table2:
    input:
        manifest=f"{R}/data/{C24_DATASET}/manifest.parquet",
        samples=f"{R}/samples/{C24_MODEL}/synthetic_train/samples.csv",
    output:
        cells=f"{C24_OUT}/table2_cells.json",
        record=f"{C24_OUT}/table2_classifiers.json",
    params:
        **c24_params(),
        classifier={**{k: v for k, v in config.get("classifier", {}).items() if k != "datasets"},
                    **C24.get("classifier", {})},
        test_splits=C24_EVAL_SPLITS,
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("chen2024_table2"),
    benchmark:
        benchpath("chen2024_table2")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/chen2024_table2.py"


rule chen2024_finding_auc:
    input:
        unpack(c24_finding_auc_inputs),
    output:
        figure=report(f"{C24_FIG}/finding_auc.png", category="chen2024"),
    log:
        logpath("chen2024_finding_auc"),
    benchmark:
        benchpath("chen2024_finding_auc")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/chen2024_finding_auc.py"


if C24:
    PAPER_CELLS["chen2024"] += [f"{C24_OUT}/table1_cells.json", f"{C24_OUT}/table2_cells.json"]
    PAPER_FIGURES["chen2024"] += [f"{C24_FIG}/{n}.png" for n in ("vocabulary", "keypatches", "prompt_grid",
                                                                   "finding_auc")]
    PAPER_JUDGES["chen2024"].append(c24_judge_card())


rule chen2024:
    input:
        f"{R}/report/chen2024.html",
        f"{C24_OUT}/prompts.json",
