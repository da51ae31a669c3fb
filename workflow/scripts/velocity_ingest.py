from seiscluster.velocity.stages import ingest
from seiscluster.workflow import run_stage

run_stage(snakemake, ingest)  # noqa: F821 (snakemake is injected by the script directive)
