rule report:
    """The self-contained HTML report, plus its figures as PNG files for snakemake --report."""
    input:
        **TABLE_FILES,
        **EXAMPLE_FILES,
        run=RUN_JSON,
    output:
        html=report(
            REPORT_HTML,
            caption="../report/html.rst",
            category="Report",
        ),
        figures=report(
            directory(FIGURES),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    params:
        title=CFG["report"]["title"],
        tables=lambda wildcards, input: os.path.dirname(input.cells),
        code=REPORT_HASH,
    shell:
        GRADLAB + " report --tables {params.tables:q} --out {output.html:q}"
        " --title {params.title:q} --figures-dir {output.figures:q} > {log:q} 2>&1"
