# The keyed stages of both branches, one rule each, made from their declarations in
# seiscluster.stagekeys.STAGES (function, config values, inputs, products, captions):
# velocity: ingest and profiles -> elbow scan -> k-means / SOM -> figures;
# tremor: waveforms -> spectrograms (and window features) -> autoencoder pretrain -> k scan
# -> DEC fine-tune -> figures and labels.
# Each writes to results/stages/<stage>/{key}/ (see common.smk) and calls its function
# through workflow/scripts/stage.py.


for _stage, _spec in STAGES.items():

    rule:
        name:
            _stage
        input:
            unpack(stage_inputs(_stage)),
        output:
            **stage_outputs(_stage),
        log:
            stage_log(_stage),
        benchmark:
            stage_benchmark(_stage)
        params:
            **stage_folders(_stage),
            **config_params(_stage),
            **code_param(_stage),
        threads: MAX_THREADS if _spec.parallel else 1
        # before the run-folder rules (links, record, report) when both wait for a core:
        # the next stage is what the run waits for
        priority: 1
        resources:
            **({"gpu": gpus} if _spec.gpu else {}),
        conda:
            "../../environment.yml"
        script:
            "../scripts/stage.py"
