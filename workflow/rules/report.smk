# The run's self-contained HTML report and, for a sweep, the summary of its runs.


rule report:
    input:
        unpack(report_inputs),
        unpack(apply_report_inputs),
        unpack(compare_report_inputs),
    output:
        report=f"{RUN}/report.html",
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{LOGS}/benchmarks/report.tsv"
    params:
        methods=run_methods,
    conda:
        "../../environment.yml"
    script:
        "../scripts/report.py"


rule sweep_summary:
    input:
        sweep_inputs,
    output:
        summary=f"{SWEEP}/summary.csv",
        index=f"{SWEEP}/index.html",
        figures=directory(f"{SWEEP}/figures"),
    log:
        f"{SWEEP}/logs/summary.log",
    params:
        runs=sweep_runs,
    conda:
        "../../environment.yml"
    script:
        "../scripts/sweep_summary.py"
