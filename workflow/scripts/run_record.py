from seiscluster.provenance import record_run
from seiscluster.workflow import run_stage

run_stage(snakemake, record_run)  # noqa: F821 (snakemake is injected by the script directive)
