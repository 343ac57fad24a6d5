rule check_group:
    """One group of cells: every model x variant x step x method at one dtype and seed."""
    input:
        models=MODEL_FILES,
    output:
        GROUP_PATTERN,
    log:
        "results/logs/check_group/{dtype}/seed{seed}.log",
    benchmark:
        "results/benchmarks/check_group/{dtype}/seed{seed}.tsv"
    params:
        grid=CHECK_PARAMS,
        code=CORE_HASH,
        cache=CACHE_DIR,
    shell:
        GRADLAB + " sweep-run --config-json {params.grid:q} --dtype {wildcards.dtype}"
        " --seed {wildcards.seed} --code-hash {params.code}"
        " --cache {params.cache:q} --out {output:q} > {log:q} 2>&1"
