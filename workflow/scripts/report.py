from seiscluster.report import report_stage
from seiscluster.workflow import run_stage

run_stage(snakemake, report_stage)  # noqa: F821 (snakemake is injected by the script directive)
