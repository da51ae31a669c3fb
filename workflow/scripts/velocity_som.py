from seiscluster.velocity.stages import fit_som
from seiscluster.workflow import run_stage

run_stage(snakemake, fit_som)  # noqa: F821 (snakemake is injected by the script directive)
