rule aggregate:
    """All group files -> the Parquet tables of docs/tables.md and run.json."""
    input:
        GROUP_FILES,
    output:
        **{
            name: report(
                path,
                caption="../report/tables.rst",
                category="Tables",
                labels={"table": name},
            )
            for name, path in TABLE_FILES.items()
        },
        run=report(
            RUN_JSON,
            caption="../report/run.rst",
            category="Tables",
            labels={"table": "run.json"},
        ),
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    params:
        config=AGGREGATE_PARAMS,
        code=CORE_HASH,
        tables=lambda wildcards, output: os.path.dirname(output.cells),
        state=STATE,
    shell:
        GRADLAB
        + " sweep-aggregate --config-json {params.config:q} --out-dir {params.tables:q}"
        " --state {params.state:q} {input:q} > {log:q} 2>&1"


rule examples:
    """The report's worked examples (the seed reproduced, one case element by element)."""
    input:
        cells=TABLE_FILES["cells"],
        best_eps=TABLE_FILES["best_eps"],
    output:
        **{
            name: report(
                path,
                caption="../report/tables.rst",
                category="Tables",
                labels={"table": name},
            )
            for name, path in EXAMPLE_FILES.items()
        },
    log:
        "results/logs/examples.log",
    benchmark:
        "results/benchmarks/examples.tsv"
    params:
        config=AGGREGATE_PARAMS,
        code=CORE_HASH,
        tables=lambda wildcards, input: os.path.dirname(input.cells),
    shell:
        GRADLAB
        + " sweep-examples --config-json {params.config:q} --tables {params.tables:q}"
        " > {log:q} 2>&1"
