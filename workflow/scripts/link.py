from seiscluster.workflow import end_job, link_products, run_stage

run_stage(snakemake, link_products)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
