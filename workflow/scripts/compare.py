from seiscluster.velocity.stages import compare
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, compare)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
