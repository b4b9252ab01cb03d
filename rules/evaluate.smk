# Evaluation models and metrics that the paper pipelines share.


rule train_classifier:
    input:
        manifest=f"{R}/data/{{dataset}}/manifest.parquet",
    output:
        weights=f"{R}/models/classifier/{{dataset}}/model.safetensors",
        card=f"{R}/models/classifier/{{dataset}}/model.json",
        test=f"{R}/eval/classifier/{{dataset}}/test_metrics.json",
    params:
        cfg=config["classifier"],
        seed=config["seed"],
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("train_classifier", "dataset"),
    benchmark:
        benchpath("train_classifier", "dataset")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train_classifier.py"
