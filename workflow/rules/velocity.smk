# Velocity branch: ingest -> profiles -> elbow scan -> k-means / SOM -> figures.
# Keyed stages (results/stages/<stage>/{key}/, see common.smk); each calls its function of
# seiscluster.velocity.stages through workflow/scripts/stage.py.


rule velocity_ingest:
    input:
        unpack(model_source),
    output:
        model=f"{keyed('velocity_ingest')}/model.nc",
        record=stage_record("velocity_ingest"),
    log:
        stage_log("velocity_ingest"),
    benchmark:
        stage_benchmark("velocity_ingest")
    params:
        **config_params("velocity_ingest"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule velocity_profiles:
    input:
        model=upstream("velocity_ingest", "model"),
    output:
        profiles=f"{keyed('velocity_profiles')}/profiles.nc",
        record=stage_record("velocity_profiles"),
    log:
        stage_log("velocity_profiles"),
    benchmark:
        stage_benchmark("velocity_profiles")
    params:
        **config_params("velocity_profiles"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule velocity_elbow:
    input:
        profiles=upstream("velocity_profiles", "profiles"),
    output:
        table=f"{keyed('velocity_elbow')}/elbow.csv",
        choice=f"{keyed('velocity_elbow')}/choice.json",
        figure=report(
            f"{keyed('velocity_elbow')}/elbow.png",
            caption="../report/elbow.rst",
            category="Velocity",
            subcategory="Elbow scan",
        ),
        record=stage_record("velocity_elbow"),
    log:
        stage_log("velocity_elbow"),
    benchmark:
        stage_benchmark("velocity_elbow")
    params:
        **config_params("velocity_elbow"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule velocity_kmeans:
    input:
        unpack(optional_upstream("velocity_elbow", choice="choice", table="table")),
        profiles=upstream("velocity_profiles", "profiles"),
    output:
        cluster_map=f"{keyed('velocity_kmeans')}/cluster_map.csv",
        clusters=f"{keyed('velocity_kmeans')}/clusters.nc",
        model=f"{keyed('velocity_kmeans')}/model.pkl",
        metrics=f"{keyed('velocity_kmeans')}/metrics.json",
        seisgo=directory(f"{keyed('velocity_kmeans')}/seisgo"),
        record=stage_record("velocity_kmeans"),
    log:
        stage_log("velocity_kmeans"),
    benchmark:
        stage_benchmark("velocity_kmeans")
    params:
        **config_params("velocity_kmeans"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule velocity_som:
    input:
        profiles=upstream("velocity_profiles", "profiles"),
    output:
        cluster_map=f"{keyed('velocity_som')}/cluster_map.csv",
        clusters=f"{keyed('velocity_som')}/clusters.nc",
        model=f"{keyed('velocity_som')}/model.pkl",
        metrics=f"{keyed('velocity_som')}/metrics.json",
        seisgo=directory(f"{keyed('velocity_som')}/seisgo"),
        record=stage_record("velocity_som"),
    log:
        stage_log("velocity_som"),
    benchmark:
        stage_benchmark("velocity_som")
    params:
        **config_params("velocity_som"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule velocity_kmeans_figures:
    input:
        profiles=upstream("velocity_profiles", "profiles"),
        clusters=upstream("velocity_kmeans", "clusters"),
    output:
        cluster_figure=report(
            f"{keyed('velocity_kmeans_figures')}/clusters.png",
            caption="../report/cluster_profiles.rst",
            category="Velocity",
            subcategory="k-means",
        ),
        map_figure=report(
            f"{keyed('velocity_kmeans_figures')}/cluster_map.png",
            caption="../report/cluster_map.rst",
            category="Velocity",
            subcategory="k-means",
        ),
        record=stage_record("velocity_kmeans_figures"),
    log:
        stage_log("velocity_kmeans_figures"),
    benchmark:
        stage_benchmark("velocity_kmeans_figures")
    params:
        **config_params("velocity_kmeans_figures"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


use rule velocity_kmeans_figures as velocity_som_figures with:
    input:
        profiles=upstream("velocity_profiles", "profiles"),
        clusters=upstream("velocity_som", "clusters"),
    output:
        cluster_figure=report(
            f"{keyed('velocity_som_figures')}/clusters.png",
            caption="../report/cluster_profiles.rst",
            category="Velocity",
            subcategory="SOM",
        ),
        map_figure=report(
            f"{keyed('velocity_som_figures')}/cluster_map.png",
            caption="../report/cluster_map.rst",
            category="Velocity",
            subcategory="SOM",
        ),
        som_figure=report(
            f"{keyed('velocity_som_figures')}/som_maps.png",
            caption="../report/som_maps.rst",
            category="Velocity",
            subcategory="SOM",
        ),
        record=stage_record("velocity_som_figures"),
    log:
        stage_log("velocity_som_figures"),
    benchmark:
        stage_benchmark("velocity_som_figures")
    params:
        **config_params("velocity_som_figures"),
