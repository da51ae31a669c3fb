from seiscluster.velocity.stages import fit_kmeans
from seiscluster.workflow import run_stage

run_stage(snakemake, fit_kmeans)  # noqa: F821 (snakemake is injected by the script directive)
