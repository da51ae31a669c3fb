from seiscluster.tremor.deep_stages import deep_figures
from seiscluster.workflow import run_stage

run_stage(snakemake, deep_figures)  # noqa: F821 (snakemake is injected by the script directive)
