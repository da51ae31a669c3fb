# Tremor branch: waveforms -> spectrograms -> autoencoder pretrain -> k scan -> DEC fine-tune.
# Keyed stages (results/stages/<stage>/{key}/, see common.smk); each calls its function of
# seiscluster.tremor through workflow/scripts/stage.py.


rule tremor_example:
    output:
        waveforms=directory(f"{keyed('tremor_example')}/waveforms"),
        truth=f"{keyed('tremor_example')}/truth.csv",
        record=stage_record("tremor_example"),
    log:
        stage_log("tremor_example"),
    benchmark:
        stage_benchmark("tremor_example")
    params:
        **config_params("tremor_example"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_spectrograms:
    input:
        unpack(waveform_inputs),
    output:
        spectrograms=directory(f"{keyed('tremor_spectrograms')}/spectrograms.zarr"),
        skipped=f"{keyed('tremor_spectrograms')}/skipped_windows.csv",
        record=stage_record("tremor_spectrograms"),
    log:
        stage_log("tremor_spectrograms"),
    benchmark:
        stage_benchmark("tremor_spectrograms")
    params:
        **config_params("tremor_spectrograms"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_features:
    input:
        unpack(waveform_inputs),
        unpack(optional_upstream("tremor_example", truth="truth")),
    output:
        table=f"{keyed('tremor_features')}/features.nc",
        scan=f"{keyed('tremor_features')}/kscan.csv",
        choice=f"{keyed('tremor_features')}/choice.json",
        labels=f"{keyed('tremor_features')}/labels.csv",
        metrics=f"{keyed('tremor_features')}/metrics.json",
        kscan_figure=report(
            f"{keyed('tremor_features')}/kscan.png",
            caption="../report/tremor_features.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        record=stage_record("tremor_features"),
    log:
        stage_log("tremor_features"),
    benchmark:
        stage_benchmark("tremor_features")
    params:
        **config_params("tremor_features"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_labels:
    input:
        features=upstream("tremor_features", "labels"),
        dec=upstream("tremor_finetune", "labels"),
    output:
        labels=f"{keyed('tremor_labels')}/labels.csv",
        record=stage_record("tremor_labels"),
    log:
        stage_log("tremor_labels"),
    benchmark:
        stage_benchmark("tremor_labels")
    params:
        **config_params("tremor_labels"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_spectrogram_figures:
    input:
        spectrograms=upstream("tremor_spectrograms", "spectrograms"),
    output:
        overview=report(
            f"{keyed('tremor_spectrogram_figures')}/overview.png",
            caption="../report/tremor_overview.rst",
            category="Tremor",
            subcategory="Spectrograms",
        ),
        examples=report(
            f"{keyed('tremor_spectrogram_figures')}/spectrogram_examples.png",
            caption="../report/tremor_examples.rst",
            category="Tremor",
            subcategory="Spectrograms",
        ),
        record=stage_record("tremor_spectrogram_figures"),
    log:
        stage_log("tremor_spectrogram_figures"),
    benchmark:
        stage_benchmark("tremor_spectrogram_figures")
    params:
        **config_params("tremor_spectrogram_figures"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_pretrain:
    input:
        spectrograms=upstream("tremor_spectrograms", "spectrograms"),
    output:
        best=f"{keyed('tremor_pretrain')}/best.ckpt",
        losses=f"{keyed('tremor_pretrain')}/losses.csv",
        record=stage_record("tremor_pretrain"),
    log:
        stage_log("tremor_pretrain"),
    benchmark:
        stage_benchmark("tremor_pretrain")
    params:
        checkpoint_dir=checkpoint_dir,
        **config_params("tremor_pretrain"),
    threads: MAX_THREADS
    resources:
        gpu=gpus,
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_embed_kscan:
    input:
        spectrograms=upstream("tremor_spectrograms", "spectrograms"),
        best=upstream("tremor_pretrain", "best"),
    output:
        embeddings=f"{keyed('tremor_embed_kscan')}/embeddings.nc",
        scan=f"{keyed('tremor_embed_kscan')}/kscan.csv",
        choice=f"{keyed('tremor_embed_kscan')}/choice.json",
        record=stage_record("tremor_embed_kscan"),
    log:
        stage_log("tremor_embed_kscan"),
    benchmark:
        stage_benchmark("tremor_embed_kscan")
    params:
        **config_params("tremor_embed_kscan"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_finetune:
    input:
        spectrograms=upstream("tremor_spectrograms", "spectrograms"),
        best=upstream("tremor_pretrain", "best"),
        embeddings=upstream("tremor_embed_kscan", "embeddings"),
        choice=upstream("tremor_embed_kscan", "choice"),
    output:
        labels=f"{keyed('tremor_finetune')}/labels.csv",
        assignments=f"{keyed('tremor_finetune')}/assignments.nc",
        final_model=f"{keyed('tremor_finetune')}/model.ckpt",
        history=f"{keyed('tremor_finetune')}/history.csv",
        record=stage_record("tremor_finetune"),
    log:
        stage_log("tremor_finetune"),
    benchmark:
        stage_benchmark("tremor_finetune")
    params:
        **config_params("tremor_finetune"),
    threads: MAX_THREADS
    resources:
        gpu=gpus,
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"


rule tremor_deep_figures:
    input:
        unpack(optional_upstream("tremor_example", truth="truth")),
        unpack(waveform_inputs),
        spectrograms=upstream("tremor_spectrograms", "spectrograms"),
        embeddings=upstream("tremor_embed_kscan", "embeddings"),
        scan=upstream("tremor_embed_kscan", "scan"),
        losses=upstream("tremor_pretrain", "losses"),
        best=upstream("tremor_pretrain", "best"),
        assignments=upstream("tremor_finetune", "assignments"),
        labels=upstream("tremor_finetune", "labels"),
        history=upstream("tremor_finetune", "history"),
        final_model=upstream("tremor_finetune", "final_model"),
    output:
        metrics=f"{keyed('tremor_deep_figures')}/dec/metrics.json",
        loss_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/losses.png",
            caption="../report/tremor_losses.rst",
            category="Tremor",
            subcategory="Training",
        ),
        kscan_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/kscan.png",
            caption="../report/tremor_kscan.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        tsne_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/tsne.png",
            caption="../report/tremor_tsne.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        timeline_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/clusters_over_time.png",
            caption="../report/tremor_timeline.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        reconstruction_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/reconstructions.png",
            caption="../report/tremor_reconstructions.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        spectra_figure=report(
            f"{keyed('tremor_deep_figures')}/figures/cluster_spectrograms.png",
            caption="../report/tremor_spectra.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        record=stage_record("tremor_deep_figures"),
    log:
        stage_log("tremor_deep_figures"),
    benchmark:
        stage_benchmark("tremor_deep_figures")
    params:
        **config_params("tremor_deep_figures"),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/stage.py"
