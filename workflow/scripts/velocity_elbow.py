from seiscluster.velocity.stages import elbow
from seiscluster.workflow import run_stage

run_stage(snakemake, elbow)  # noqa: F821 (snakemake is injected by the script directive)
