from seiscluster.velocity.stages import compare
from seiscluster.workflow import run_stage

run_stage(snakemake, compare)  # noqa: F821 (snakemake is injected by the script directive)
