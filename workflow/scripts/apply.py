from seiscluster.tremor.apply import apply
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, apply)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
