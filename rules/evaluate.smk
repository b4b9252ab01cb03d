# Evaluation models and metrics that the paper pipelines share.
from medsynth.metrics import backbones as mb
from medsynth.metrics import generative as mg
from medsynth.metrics import volumes as mv


# The classifier that scores a dataset's real and generated images (the "judge", medsynth.classifier.judge): a
# phantom dataset's is trained on the judge's own cohort (rules/judge.smk), a real dataset's on its training split;
# its card carries validation-chosen thresholds, held-out AUCs with 95% bootstrap intervals and the labels it refuses.
rule train_classifier:
    input:
        manifest=classifier_training_manifest,
        judged=f"{R}/data/{{dataset}}/manifest.parquet",
    output:
        weights=f"{R}/models/classifier/{{dataset}}/model.safetensors",
        card=f"{R}/models/classifier/{{dataset}}/model.json",
        test=f"{R}/eval/classifier/{{dataset}}/test_metrics.json",
    params:
        cfg={k: v for k, v in config["classifier"].items() if k not in ("datasets", "judge")},
        judge=J.judge_config(config),
        own_cohort=lambda wc: J.judged_by_cohort(config, wc.dataset),
        seed=config["seed"],
        images=lambda wc, input: (str(Path(input.manifest).parent) if J.judged_by_cohort(config, wc.dataset)
                                  else results_of(input.manifest, 2)),
    log:
        logpath("train_classifier", "dataset"),
    benchmark:
        benchpath("train_classifier", "dataset")
    threads: 2
    priority: TRAIN_PRIORITY
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train_classifier.py"


# Generic distribution metrics. Any paper pipeline asks for
#   <results>/eval/generative/<model>/<promptset>/<split>/<refsplit>/<backbone>__<resize>.json
# (FID, KID, IS of the model's samples for the prompts of <split> against the real images of <refsplit> of the
# model's dataset), and the real side's statistics are computed once per (dataset, split, backbone, resize) into
# <results>/cache/metrics/reference/... (pytorch-fid .npz layout) and reused by every model and paper. A reference
# made elsewhere (pytorch-fid --save-stats: mu/sigma, no metadata) is used instead where the config declares it
# (metrics.reference_stats: dataset, split, file, backbone, dims, resize, declared_by_user: true).
# backbone: inception-fid | inception-random (labelled stand-in) | xrv-densenet121 (config xrv_weights) |
# classifier (the dataset's own classifier, labelled stand-in); resize: native | <filter><size> (e.g. bicubic64).
rule reference_stats:
    input:
        unpack(lambda wc: mb.rule_inputs(config, R, wc.backbone, wc.dataset)),
        manifest=f"{R}/data/{{dataset}}/manifest.parquet",
    output:
        cache_output(f"{R}/cache/metrics/reference/{{dataset}}/{{split}}/{{backbone}}__{{resize}}.npz"),
    wildcard_constraints:
        split=mg.SPLIT_PATTERN,
        backbone="|".join(mb.FEATURE_BACKBONES),
        resize=mg.RESIZE_PATTERN,
    params:
        settings=mb.metrics_settings(config),
        seed=config["seed"],
        results=lambda wc, input: results_of(input.manifest, 2),
        cache=lambda wc, output: results_of(output[0], 3),
    log:
        logpath("reference_stats", "dataset", "split", "backbone", "resize"),
    benchmark:
        benchpath("reference_stats", "dataset", "split", "backbone", "resize")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/reference_stats.py"


rule generative_metrics:
    input:
        unpack(lambda wc: mb.rule_inputs(config, R, wc.backbone, config["models"][wc.model]["dataset"])),
        samples=f"{R}/samples/{{model}}/{{promptset}}/samples.csv",
        reference=lambda wc: mg.reference_input(
            config, R, config["models"][wc.model]["dataset"], wc.refsplit, wc.backbone, wc.resize
        ),
    output:
        f"{R}/eval/generative/{{model}}/{{promptset}}/{{split}}/{{refsplit}}/{{backbone}}__{{resize}}.json",
    wildcard_constraints:
        split=mg.SPLIT_PATTERN,
        refsplit=mg.SPLIT_PATTERN,
        backbone="|".join(mb.FEATURE_BACKBONES),
        resize=mg.RESIZE_PATTERN,
    params:
        settings=mb.metrics_settings(config),
        seed=config["seed"],
        scale=config["scale"],
        cache=lambda wc, output: str(Path(results_of(output[0], 6), "cache", "metrics")),
        declared=lambda wc: mg.declared_reference(
            config, config["models"][wc.model]["dataset"], wc.refsplit, wc.backbone, wc.resize
        ),
    log:
        logpath("generative_metrics", "model", "promptset", "split", "refsplit", "backbone", "resize"),
    benchmark:
        benchpath("generative_metrics", "model", "promptset", "split", "refsplit", "backbone", "resize")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/generative_metrics.py"


# Classifier metrics of generated images: a classifier scores each image of a prompt set drawn from the dataset's
# reports for its prompt's labels (AUC, accuracy, F1, precision, recall per label + macro), beside the same
# classifier on the real images and the generated-vs-real feature cosine similarity.
# scorer: xrv-densenet121 (config xrv_weights) | classifier (the dataset's own classifier, labelled stand-in).
rule classifier_metrics:
    input:
        unpack(lambda wc: mb.rule_inputs(config, R, wc.scorer, config["models"][wc.model]["dataset"])),
        samples=f"{R}/samples/{{model}}/{{promptset}}/samples.csv",
    output:
        f"{R}/eval/scored/{{model}}/{{promptset}}/{{split}}/{{scorer}}.json",
    wildcard_constraints:
        split=mg.SPLIT_PATTERN,
        scorer="classifier|xrv-densenet121",
    params:
        seed=config["seed"],
        scale=config["scale"],
        results=lambda wc, output: results_of(output[0], 5),
    log:
        logpath("classifier_metrics", "model", "promptset", "split", "scorer"),
    benchmark:
        benchpath("classifier_metrics", "model", "promptset", "split", "scorer")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/classifier_metrics.py"


# Image quality of a prompt set's samples: RMSE/PSNR/SSIM/MS-SSIM against each prompt's real image (prompt sets drawn
# from the manifest's reports), NIQE / contrast ratio / sharpness / entropy, MS-SSIM diversity within a prompt.
rule image_quality:
    input:
        samples=f"{R}/samples/{{model}}/{{promptset}}/samples.csv",
    output:
        f"{R}/eval/quality/{{model}}/{{promptset}}/{{split}}.json",
    wildcard_constraints:
        split=mg.SPLIT_PATTERN,
    params:
        niqe_params=config.get("metrics", {}).get("niqe_params"),
        seed=config["seed"],
        scale=config["scale"],
        results=lambda wc, output: results_of(output[0], 4),
    log:
        logpath("image_quality", "model", "promptset", "split"),
    benchmark:
        benchpath("image_quality", "model", "promptset", "split")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/image_quality.py"


# 3D domain feature distances (xing2024) between two volume sets, slice-wise (each axial slice one 1-channel image
# through a 2D backbone; never three adjacent slices as RGB) or patch-wise (3D patches through a 3D backbone):
#   <results>/eval/volumes/<a>/<asplit>/vs/<b>/<bsplit>/<mode>__<backbone>.json
# <a>, <b>: a volume dataset (its preprocessed crops) or <model>/<promptset> (a model's sampled volumes);
# mode: slice (inception-fid | inception-random | xrv-densenet121) or patch (med3d-resnet10 with config
# metrics.volume.med3d_weights | med3d-random, labelled stand-in). E.g. phantom_ct/train/vs/phantom_ct/test/...
rule volume_metrics:
    input:
        unpack(lambda wc: mv.rule_inputs(config, R, wc.mode, wc.backbone, wc.a, wc.b)),
    output:
        f"{R}/eval/volumes/{{a}}/{{asplit}}/vs/{{b}}/{{bsplit}}/{{mode}}__{{backbone}}.json",
    wildcard_constraints:
        a=mv.source_pattern(config),
        b=mv.source_pattern(config),
        asplit=mg.SPLIT_PATTERN,
        bsplit=mg.SPLIT_PATTERN,
        mode="|".join(mv.VOLUME_MODES),
        backbone="|".join(mv.SLICE_BACKBONES + mv.PATCH_BACKBONES),
    params:
        settings=mv.volume_settings(config),
        seed=config["seed"],
        scale=config["scale"],
        cache=lambda wc, output: str(Path(mv.results_root(output[0], wc.a, wc.b), "cache", "metrics")),
    log:
        logpath("volume_metrics", "a", "asplit", "b", "bsplit", "mode", "backbone"),
    benchmark:
        benchpath("volume_metrics", "a", "asplit", "b", "bsplit", "mode", "backbone")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/volume_metrics.py"
