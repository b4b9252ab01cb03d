# Reports: one page per paper (its tables in the paper's layout, measured beside published) and an index.
# Paper rule files register what they measure in PAPER_CELLS / PAPER_FIGURES (filled before this file is included).


rule paper_report:
    input:
        cells=lambda wc: PAPER_CELLS.get(wc.paper, []),
        figures=lambda wc: PAPER_FIGURES.get(wc.paper, []),
        judges=lambda wc: sorted(set(PAPER_JUDGES.get(wc.paper, []))),
    output:
        markdown=f"{R}/report/{{paper}}.md",
        html=report(f"{R}/report/{{paper}}.html", category="Papers", labels={"paper": "{paper}"}),
    params:
        scale=config["scale"],
        configs=lambda wc: config_names(),
        cells=PAPER_CELLS,
    log:
        logpath("paper_report", "paper"),
    benchmark:
        benchpath("paper_report", "paper")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/render_report.py"


rule report_index:
    input:
        pages=expand(f"{R}/report/{{paper}}.html", paper=PAPERS),
        cells=[f for files in PAPER_CELLS.values() for f in files],
        summaries=expand(f"{R}/data/{{dataset}}/summary.json", dataset=DATASETS),
    output:
        html=report(f"{R}/report/index.html", category="Index"),
        markdown=f"{R}/report/index.md",
    params:
        scale=config["scale"],
        configs=lambda wc: config_names(),
        cells=PAPER_CELLS,
    log:
        logpath("report_index"),
    benchmark:
        benchpath("report_index")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/render_index.py"


rule report_screenshot:
    input:
        html=f"{R}/report/{{page}}.html",
    output:
        report(f"{R}/report/{{page}}.png", category="Index"),
    log:
        logpath("report_screenshot", "page"),
    benchmark:
        benchpath("report_screenshot", "page")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/screenshot_report.py"


onstart:
    # The live index (medsynth.report.progress): there from the first minute, replaced by the final one at the end.
    from medsynth.report.progress import write_live_index

    if write_live_index(R, PAPER_CELLS, config["scale"]):
        print(f"medsynth: live index at {Path(R, 'report', 'index.html').resolve()} (each paper's page as it finishes)")
