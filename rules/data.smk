# Ingest (adapter -> raw manifest), sharded preprocessing, and the merge that checks inputs = outputs + rejects.


checkpoint ingest:
    input:
        ingest_inputs,
    output:
        f"{R}/manifests/{{dataset}}.parquet",
    params:
        dataset=lambda wc: config["datasets"][wc.dataset],
        pseudonym=config.get("pseudonym", {}),
        split=config.get("split", {}).get("fractions", {"train": 0.8, "val": 0.1, "test": 0.1}),
        results=lambda wc, output: results_of(output[0], 1),
        seed=config["seed"],
    log:
        logpath("ingest", "dataset"),
    benchmark:
        benchpath("ingest", "dataset")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/build_manifest.py"


rule preprocess_shard:
    input:
        f"{R}/manifests/{{dataset}}.parquet",
    output:
        directory(f"{R}/preprocessed/{{dataset}}/shards/{{shard}}"),
    params:
        dataset=lambda wc: {**config["datasets"][wc.dataset], "seed": config["seed"]},
        kind=lambda wc: wf.kind(config, wc.dataset),
        results=lambda wc, output: results_of(output[0], 3),
    log:
        logpath("preprocess_shard", "dataset", "shard"),
    benchmark:
        benchpath("preprocess_shard", "dataset", "shard")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/preprocess_shard.py"


rule merge_dataset:
    input:
        manifest=f"{R}/manifests/{{dataset}}.parquet",
        shards=dataset_shards,
    output:
        manifest=f"{R}/data/{{dataset}}/manifest.parquet",
        rejects=f"{R}/data/{{dataset}}/rejects.csv",
        summary=f"{R}/data/{{dataset}}/summary.json",
    log:
        logpath("merge_dataset", "dataset"),
    benchmark:
        benchpath("merge_dataset", "dataset")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/merge_shards.py"


rule clahe_figure:
    input:
        manifest=f"{R}/data/{{dataset}}/manifest.parquet",
        sources=f"{R}/manifests/{{dataset}}.parquet",  # private id -> source mapping: the "before" image
    output:
        report(f"{R}/figures/{{dataset}}/clahe_before_after.png", category="Preprocessing"),
    params:
        dataset=lambda wc: config["datasets"][wc.dataset],
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("clahe_figure", "dataset"),
    benchmark:
        benchpath("clahe_figure", "dataset")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/plot_clahe.py"
