# Monitoring: a run with `apply.run` set labels its records with that finished run's
# clustering, without retraining (seiscluster.tremor.apply; helpers in apply_common.smk).


rule tremor_apply:
    input:
        unpack(apply_inputs),
    output:
        metrics=f"{RUN}/apply/metrics.json",
        timeline=report(
            f"{RUN}/apply/timeline.png",
            caption="../report/tremor_apply.rst",
            category="Tremor",
            subcategory="Monitoring",
        ),
    log:
        f"{LOGS}/tremor_apply.log",
    benchmark:
        f"{LOGS}/benchmarks/tremor_apply.tsv"
    params:
        labels=apply_state("labels.csv"),
        days=apply_state("days.csv"),
        model=apply_state("model.json"),
        history=apply_state("history.log"),
        run=apply_param("apply.run"),
        waveforms=apply_param("data.waveforms"),
        apply=apply_param("apply"),
        compute=apply_param("compute"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/apply.py"
