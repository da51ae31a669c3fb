# Tremor branch: waveforms -> spectrograms -> autoencoder pretrain -> k scan -> DEC fine-tune.
# Every rule calls one function of seiscluster.tremor through workflow/scripts.


rule tremor_example:
    output:
        waveforms=directory(f"{TRE}/example/waveforms"),
        truth=f"{TRE}/example/truth.csv",
    log:
        f"{LOGS}/tremor_example.log",
    params:
        example=section(CFG.data.waveforms.example),
        window_length=CFG.tremor.spectrogram.window_length,
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_example.py"


rule tremor_spectrograms:
    input:
        unpack(waveform_inputs),
    output:
        spectrograms=directory(f"{TRE}/spectrograms.zarr"),
        skipped=f"{TRE}/skipped_windows.csv",
    log:
        f"{LOGS}/tremor_spectrograms.log",
    params:
        waveforms=section(CFG.data.waveforms),
        preprocess=section(CFG.tremor.preprocess),
        spectrogram=section(CFG.tremor.spectrogram),
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_spectrograms.py"


rule tremor_spectrogram_figures:
    input:
        spectrograms=rules.tremor_spectrograms.output.spectrograms,
    output:
        overview=report(
            f"{TRE}/figures/overview.png",
            caption="../report/tremor_overview.rst",
            category="Tremor",
            subcategory="Spectrograms",
        ),
        examples=report(
            f"{TRE}/figures/spectrogram_examples.png",
            caption="../report/tremor_examples.rst",
            category="Tremor",
            subcategory="Spectrograms",
        ),
    log:
        f"{LOGS}/tremor_spectrogram_figures.log",
    params:
        dpi=CFG.tremor.plot.dpi,
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_spectrogram_figures.py"


rule tremor_pretrain:
    input:
        spectrograms=rules.tremor_spectrograms.output.spectrograms,
    output:
        best=f"{TRE}/pretrain/best.ckpt",
        losses=f"{TRE}/pretrain/losses.csv",
    log:
        f"{LOGS}/tremor_pretrain.log",
    params:
        checkpoint_dir=f"{TRE}/pretrain/checkpoints",
        model=section(CFG.tremor.model),
        pretrain=section(CFG.tremor.pretrain),
        trainer=section(CFG.trainer),
        channels=section(CFG.tremor.preprocess.channels),
        seed=CFG.seed,
    threads: MAX_THREADS
    resources:
        gpu=1 if CFG.trainer.accelerator.value == "gpu" else 0,
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_pretrain.py"


rule tremor_embed_kscan:
    input:
        spectrograms=rules.tremor_spectrograms.output.spectrograms,
        best=rules.tremor_pretrain.output.best,
    output:
        embeddings=f"{TRE}/kscan/embeddings.nc",
        scan=f"{TRE}/kscan/kscan.csv",
        choice=f"{TRE}/kscan/choice.json",
    log:
        f"{LOGS}/tremor_embed_kscan.log",
    params:
        kscan=section(CFG.tremor.kscan),
        channels=section(CFG.tremor.preprocess.channels),
        seed=CFG.seed,
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_embed_kscan.py"


rule tremor_finetune:
    input:
        spectrograms=rules.tremor_spectrograms.output.spectrograms,
        best=rules.tremor_pretrain.output.best,
        embeddings=rules.tremor_embed_kscan.output.embeddings,
        choice=rules.tremor_embed_kscan.output.choice,
    output:
        labels=f"{TRE}/dec/labels.csv",
        assignments=f"{TRE}/dec/assignments.nc",
        final_model=f"{TRE}/dec/model.ckpt",
        history=f"{TRE}/dec/history.csv",
    log:
        f"{LOGS}/tremor_finetune.log",
    params:
        dec=section(CFG.tremor.dec),
        trainer=section(CFG.trainer),
        channels=section(CFG.tremor.preprocess.channels),
        seed=CFG.seed,
    threads: MAX_THREADS
    resources:
        gpu=1 if CFG.trainer.accelerator.value == "gpu" else 0,
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_finetune.py"


rule tremor_deep_figures:
    input:
        unpack(tremor_truth),
        spectrograms=rules.tremor_spectrograms.output.spectrograms,
        embeddings=rules.tremor_embed_kscan.output.embeddings,
        scan=rules.tremor_embed_kscan.output.scan,
        losses=rules.tremor_pretrain.output.losses,
        best=rules.tremor_pretrain.output.best,
        assignments=rules.tremor_finetune.output.assignments,
        labels=rules.tremor_finetune.output.labels,
        history=rules.tremor_finetune.output.history,
        final_model=rules.tremor_finetune.output.final_model,
    output:
        metrics=f"{TRE}/dec/metrics.json",
        loss_figure=report(
            f"{TRE}/figures/losses.png",
            caption="../report/tremor_losses.rst",
            category="Tremor",
            subcategory="Training",
        ),
        kscan_figure=report(
            f"{TRE}/figures/kscan.png",
            caption="../report/tremor_kscan.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        tsne_figure=report(
            f"{TRE}/figures/tsne.png",
            caption="../report/tremor_tsne.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        timeline_figure=report(
            f"{TRE}/figures/clusters_over_time.png",
            caption="../report/tremor_timeline.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        reconstruction_figure=report(
            f"{TRE}/figures/reconstructions.png",
            caption="../report/tremor_reconstructions.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
        spectra_figure=report(
            f"{TRE}/figures/cluster_spectrograms.png",
            caption="../report/tremor_spectra.rst",
            category="Tremor",
            subcategory="Clusters",
        ),
    log:
        f"{LOGS}/tremor_deep_figures.log",
    params:
        tsne=section(CFG.tremor.tsne),
        plot=section(CFG.tremor.plot),
        channels=section(CFG.tremor.preprocess.channels),
        seed=CFG.seed,
    threads: MAX_THREADS
    conda:
        "../../environment.yml"
    script:
        "../scripts/tremor_deep_figures.py"
