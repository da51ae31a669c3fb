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
