# Run folders: results/<run>/ shows the products of the run's keyed stages through relative
# symbolic links (one link rule per stage), beside the run's resolved config.yaml and its
# provenance.json.
#
# These rules do milliseconds of file work, so they run inside Snakemake's own process
# (`run:`), not as a fresh Python process each (about 2 s of start-up and imports apiece):
# seiscluster.workflow.run_local calls the same functions the stage scripts call.

from seiscluster.workflow import run_local


for _stage in STAGES:

    rule:
        name:
            f"link_{_stage}"
        input:
            linked_products(_stage),
        output:
            link_outputs(_stage),
        log:
            f"{LOGS}/links/{_stage}.log",
        params:
            links=link_pairs(_stage),
            stems=link_stems(_stage),
        localrule: True
        run:
            from seiscluster.workflow import link_products

            run_local(link_products, log, params=params)


rule run_config:
    output:
        config=f"{RUN}/config.yaml",
    log:
        f"{LOGS}/run_config.log",
    params:
        text=config_text,
    localrule: True
    run:
        from seiscluster.fileio import write_text

        run_local(write_text, log, args=(output.config, params.text))


rule run_record:
    input:
        unpack(record_inputs),
    output:
        provenance=f"{RUN}/provenance.json",
    log:
        f"{LOGS}/run_record.log",
    params:
        overrides=run_overrides,
        folder=run_folder,
    localrule: True
    run:
        from seiscluster.provenance import record_run

        run_local(record_run, log, input=input, output=output, params=params)
