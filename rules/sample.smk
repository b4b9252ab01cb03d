# Generic sampling: one prompt set (config `models: <model>: prompt_sets: <promptset>:`) from a trained model entry
# of any family (medsynth.families: the family's `sample` writes one file per row).


rule sample_images:
    input:
        model=model_final,
        manifest=model_manifest,
    output:
        table=f"{R}/samples/{{model}}/{{promptset}}/samples.csv",
    params:
        spec=lambda wc: config["models"][wc.model]["prompt_sets"][wc.promptset],
        model=model_cfg,
        folder=lambda wc: model_folder(wc.model),
        results=lambda wc, output: results_of(output.table, 3),
    log:
        logpath("sample_images", "model", "promptset"),
    benchmark:
        benchpath("sample_images", "model", "promptset")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=model_gpus,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/sample_images.py"
