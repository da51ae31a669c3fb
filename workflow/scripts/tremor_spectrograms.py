from seiscluster.tremor.stages import spectrograms
from seiscluster.workflow import run_stage

run_stage(snakemake, spectrograms)  # noqa: F821 (snakemake is injected by the script directive)
