# The resolved configuration and the run's self-contained HTML report.


rule run_config:
    output:
        config=f"{RESULTS}/config.yaml",
    log:
        f"{LOGS}/run_config.log",
    params:
        text=to_yaml(CFG),
    conda:
        "../../environment.yml"
    script:
        "../scripts/run_config.py"


rule report:
    input:
        unpack(report_inputs),
    output:
        report=f"{RESULTS}/report.html",
    log:
        f"{LOGS}/report.log",
    params:
        methods=METHODS,
    conda:
        "../../environment.yml"
    script:
        "../scripts/report.py"
