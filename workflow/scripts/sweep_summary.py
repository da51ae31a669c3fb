from seiscluster.sweep import summarise
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, summarise)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
