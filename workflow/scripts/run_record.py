from seiscluster.provenance import record_run
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, record_run)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
