from seiscluster.report import report_stage
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, report_stage)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
