from seiscluster.velocity.stages import profiles
from seiscluster.workflow import run_stage

run_stage(snakemake, profiles)  # noqa: F821 (snakemake is injected by the script directive)
