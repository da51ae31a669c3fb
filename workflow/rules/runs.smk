# Run folders: results/<run>/ shows the products of the run's keyed stages through relative
# symbolic links (one link rule per stage), beside the run's resolved config.yaml and its
# provenance.json.


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
        conda:
            "../../environment.yml"
        script:
            "../scripts/link.py"


rule run_config:
    output:
        config=f"{RUN}/config.yaml",
    log:
        f"{LOGS}/run_config.log",
    params:
        text=config_text,
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/run_config.py"


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
    conda:
        "../../environment.yml"
    script:
        "../scripts/run_record.py"
