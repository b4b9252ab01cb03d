# Generic editing: one edit set (config `models: <model>: edit_sets: <editset>:`, medsynth.sampling.edit_sets) of
# real images edited by a trained model entry through its family (ldm2d: SDEdit / img2img at each strength):
# <results>/edits/<model>/<editset>/edits.csv + one PNG per edit.


rule edit_images:
    input:
        model=model_final,
        manifest=model_dataset_manifest,
    output:
        table=f"{R}/edits/{{model}}/{{editset}}/edits.csv",
    wildcard_constraints:
        editset=r"[a-z0-9_]+",
    params:
        spec=lambda wc: config["models"][wc.model]["edit_sets"][wc.editset],
        model=model_cfg,
        seed=config["seed"],
        folder=lambda wc: model_folder(wc.model),
        results=lambda wc, output: results_of(output.table, 3),
    log:
        logpath("edit_images", "model", "editset"),
    benchmark:
        benchpath("edit_images", "model", "editset")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=model_gpus,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/edit_images.py"
