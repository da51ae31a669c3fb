from seiscluster.velocity.stages import figures
from seiscluster.workflow import run_stage

run_stage(snakemake, figures)  # noqa: F821 (snakemake is injected by the script directive)
