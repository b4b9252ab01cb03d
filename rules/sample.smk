# Generic sampling: one prompt set (config `models: <model>: prompt_sets: <promptset>:`) from a trained pipeline.


rule sample_images:
    input:
        unet=rules.train_diffusion.output.unet,
        manifest=model_manifest,
    output:
        table=f"{R}/samples/{{model}}/{{promptset}}/samples.csv",
    params:
        spec=lambda wc: config["models"][wc.model]["prompt_sets"][wc.promptset],
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
