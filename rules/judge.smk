# The judge's own phantom cohort (medsynth.phantom.judge_cohort): balanced, labelled radiographs for the classifier
# that scores the phantom's real and generated images (rule train_classifier), drawn from patients and random
# streams that no generator trains or is evaluated on, preprocessed exactly like the dataset it judges.


rule judge_shard:
    output:
        directory(f"{R}/raw/phantom_judge/{{dataset}}/shards/{{shard}}"),
    params:
        judge=J.judge_config(config),
        phantom=config.get("phantom", {}),
        preprocess=lambda wc: config["datasets"][wc.dataset],
    log:
        logpath("judge_shard", "dataset", "shard"),
    benchmark:
        benchpath("judge_shard", "dataset", "shard")
    threads: 1
    priority: TRAIN_PRIORITY
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/judge_shard.py"


rule judge_cohort:
    input:
        lambda wc: expand(f"{R}/raw/phantom_judge/{wc.dataset}/shards/{{shard}}", shard=J.judge_shards(config)),
    output:
        manifest=f"{R}/raw/phantom_judge/{{dataset}}/manifest.parquet",
        counts=report(f"{R}/raw/phantom_judge/{{dataset}}/label_counts.csv", category="Judge"),
    log:
        logpath("judge_cohort", "dataset"),
    benchmark:
        benchpath("judge_cohort", "dataset")
    threads: 1
    priority: TRAIN_PRIORITY
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/judge_cohort.py"

