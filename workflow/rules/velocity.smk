# Velocity branch: ingest -> profiles -> elbow scan -> k-means / SOM -> figures.
# Every rule calls one function of seiscluster.velocity.stages through workflow/scripts.


rule velocity_ingest:
    input:
        unpack(model_source),
    output:
        model=f"{VEL}/model.nc",
    log:
        f"{LOGS}/velocity_ingest.log",
    params:
        format=section(CFG.data.velocity.format),
        variable=CFG.data.velocity.variable,
        example=section(CFG.data.velocity.example),
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_ingest.py"


rule velocity_profiles:
    input:
        model=rules.velocity_ingest.output.model,
    output:
        profiles=f"{VEL}/profiles.nc",
    log:
        f"{LOGS}/velocity_profiles.log",
    params:
        **section(CFG.velocity.profiles),
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_profiles.py"


rule velocity_elbow:
    input:
        profiles=rules.velocity_profiles.output.profiles,
    output:
        table=f"{VEL}/elbow/elbow.csv",
        choice=f"{VEL}/elbow/choice.json",
        figure=report(
            f"{VEL}/elbow/elbow.png",
            caption="../report/elbow.rst",
            category="Velocity",
            subcategory="Elbow scan",
        ),
    log:
        f"{LOGS}/velocity_elbow.log",
    params:
        kmeans=section(CFG.velocity.kmeans),
        elbow=section(CFG.velocity.elbow),
        dpi=CFG.velocity.plot.dpi,
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_elbow.py"


rule velocity_kmeans:
    input:
        unpack(elbow_outputs),
        profiles=rules.velocity_profiles.output.profiles,
    output:
        cluster_map=f"{VEL}/kmeans/cluster_map.csv",
        clusters=f"{VEL}/kmeans/clusters.nc",
        model=f"{VEL}/kmeans/model.pkl",
        metrics=f"{VEL}/kmeans/metrics.json",
        seisgo=directory(f"{VEL}/kmeans/seisgo"),
    log:
        f"{LOGS}/velocity_kmeans.log",
    params:
        kmeans=section(CFG.velocity.kmeans),
        source=CFG.velocity.source,
        tag=CFG.velocity.tag,
        silhouette_sample_size=CFG.velocity.elbow.silhouette_sample_size,
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_kmeans.py"


rule velocity_som:
    input:
        profiles=rules.velocity_profiles.output.profiles,
    output:
        cluster_map=f"{VEL}/som/cluster_map.csv",
        clusters=f"{VEL}/som/clusters.nc",
        model=f"{VEL}/som/model.pkl",
        metrics=f"{VEL}/som/metrics.json",
        seisgo=directory(f"{VEL}/som/seisgo"),
    log:
        f"{LOGS}/velocity_som.log",
    params:
        som=section(CFG.velocity.som),
        source=CFG.velocity.source,
        tag=CFG.velocity.tag,
        silhouette_sample_size=CFG.velocity.elbow.silhouette_sample_size,
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_som.py"


rule velocity_kmeans_figures:
    input:
        profiles=rules.velocity_profiles.output.profiles,
        clusters=rules.velocity_kmeans.output.clusters,
    output:
        cluster_figure=report(
            f"{VEL}/kmeans/clusters.png",
            caption="../report/cluster_profiles.rst",
            category="Velocity",
            subcategory="k-means",
        ),
        map_figure=report(
            f"{VEL}/kmeans/cluster_map.png",
            caption="../report/cluster_map.rst",
            category="Velocity",
            subcategory="k-means",
        ),
    log:
        f"{LOGS}/velocity_kmeans_figures.log",
    params:
        figsize=section(CFG.velocity.plot.figsize),
        dpi=CFG.velocity.plot.dpi,
    conda:
        "../../environment.yml"
    script:
        "../scripts/velocity_figures.py"


use rule velocity_kmeans_figures as velocity_som_figures with:
    input:
        profiles=rules.velocity_profiles.output.profiles,
        clusters=rules.velocity_som.output.clusters,
    output:
        cluster_figure=report(
            f"{VEL}/som/clusters.png",
            caption="../report/cluster_profiles.rst",
            category="Velocity",
            subcategory="SOM",
        ),
        map_figure=report(
            f"{VEL}/som/cluster_map.png",
            caption="../report/cluster_map.rst",
            category="Velocity",
            subcategory="SOM",
        ),
        som_figure=report(
            f"{VEL}/som/som_maps.png",
            caption="../report/som_maps.rst",
            category="Velocity",
            subcategory="SOM",
        ),
    log:
        f"{LOGS}/velocity_som_figures.log",
