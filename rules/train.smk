# Generic training of a latent-diffusion model entry (config `models: <model>:`): VAE stage, then diffusion stage
# (a `pretrained:` Stable Diffusion entry skips the VAE stage). Papers reuse these by adding a model entry; the
# stages read everything from that entry (sizes, optimiser, steps, strategy). A job with resources.gpu > 1 runs
# its stage under `accelerate launch --num_processes {resources.gpu}` (medsynth.training.launch).
# Training jobs start first among ready jobs (TRAIN_PRIORITY, rules/common.smk).


rule train_vae:
    input:
        manifest=model_manifest,
    output:
        config=f"{R}/models/{{model}}/vae/config.json",
        weights=f"{R}/models/{{model}}/vae/diffusion_pytorch_model.safetensors",
        summary=f"{R}/models/{{model}}/vae_train.json",
    params:
        model=model_cfg,
        seed=config["seed"],
        keep_checkpoints=config["keep_checkpoints"],
        work=lambda wc, output: str(Path(output.summary).parent / "work" / "vae"),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("train_vae", "model"),
    benchmark:
        benchpath("train_vae", "model")
    priority: TRAIN_PRIORITY
    threads: 2
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=model_gpus,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train_vae.py"


rule select_rows:
    # `rows:` entries: the seeded few-shot selection (medsynth.training.rows), recorded in rows.json.
    input:
        manifest=model_dataset_manifest,
    output:
        rows=f"{R}/models/{{model}}/rows.parquet",
        record=f"{R}/models/{{model}}/rows.json",
    params:
        spec=lambda wc: config["models"][wc.model]["rows"],
        seed=config["seed"],
    log:
        logpath("select_rows", "model"),
    benchmark:
        benchpath("select_rows", "model")
    priority: TRAIN_PRIORITY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/select_rows.py"


rule train_diffusion:
    input:
        manifest=model_manifest,
        vae=model_vae,
        base=model_base,
        corpus=model_distill_corpus,
    output:
        unet=f"{R}/models/{{model}}/pipeline/unet/config.json",
        summary=f"{R}/models/{{model}}/diffusion_train.json",
    params:
        model=model_cfg,
        seed=config["seed"],
        keep_checkpoints=config["keep_checkpoints"],
        work=lambda wc, output: str(Path(output.summary).parent / "work" / "diffusion"),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("train_diffusion", "model"),
    benchmark:
        benchpath("train_diffusion", "model")
    priority: TRAIN_PRIORITY
    threads: 2
    resources:
        mem_mb=16000,
        runtime=2880,
        gpu=model_gpus,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train_diffusion.py"


rule train_model_stage:
    # Every other family (medsynth.families: ddpm3d, pix2pix3d, vq_ar, ...): stage {stage} of model {model}, after
    # its earlier stages; the family trains and saves it, the marker family.json says it finished.
    input:
        unpack(lambda wc: {"manifest": model_manifest(wc), **model_earlier_stages(wc)}),
    output:
        marker=f"{R}/models/{{model}}/{{stage}}/family.json",
        summary=f"{R}/models/{{model}}/{{stage}}_train.json",
    wildcard_constraints:
        model="|".join(models_of_kind(*GENERIC_KINDS)) or "NONE",
        stage="|".join(sorted({s for k in GENERIC_KINDS for s in families.family(k).stages})) or "NONE",
    params:
        model=model_cfg,
        seed=config["seed"],
        keep_checkpoints=config["keep_checkpoints"],
        work=lambda wc, output: str(Path(output.summary).parent / "work" / wc.stage),
        results=lambda wc, input: results_of(input.manifest, 2),
    log:
        logpath("train_model_stage", "model", "stage"),
    benchmark:
        benchpath("train_model_stage", "model", "stage")
    priority: TRAIN_PRIORITY
    threads: 2
    resources:
        mem_mb=16000,
        runtime=2880,
        gpu=model_gpus,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train_model_stage.py"
