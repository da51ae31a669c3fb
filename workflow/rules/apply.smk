# Monitoring: a run with `apply.run` set labels its records with that finished run's
# clustering, without retraining (seiscluster.tremor.apply); a run with
# `velocity.compare.run` set assigns its model's profiles to that run's centroids
# (seiscluster.velocity.stages.compare). Helpers in apply_common.smk.


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


rule velocity_compare:
    input:
        unpack(compare_inputs),
    output:
        applied=f"{RUN}/velocity/compare/applied.nc",
        contingency=f"{RUN}/velocity/compare/contingency.csv",
        metrics=f"{RUN}/velocity/compare/metrics.json",
        figure=report(
            f"{RUN}/velocity/compare/agreement.png",
            caption="../report/velocity_compare.rst",
            category="Velocity",
            subcategory="Model comparison",
        ),
    log:
        f"{LOGS}/velocity_compare.log",
    benchmark:
        f"{LOGS}/benchmarks/velocity_compare.tsv"
    params:
        variable=apply_param("data.velocity.variable"),
        zrange=apply_param("velocity.profiles.zrange"),
        spacing=apply_param("velocity.profiles.spacing"),
        dz=apply_param("velocity.profiles.dz"),
        crop=apply_param("velocity.compare.crop"),
        max_distance_km=apply_param("velocity.compare.max_distance_km"),
        markers=apply_param("velocity.plot.markers"),
        dpi=apply_param("velocity.plot.dpi"),
        model_name=compared_model_name,
    conda:
        "../../environment.yml"
    script:
        "../scripts/compare.py"
