from seiscluster.tremor.stages import make_example
from seiscluster.workflow import run_stage

run_stage(snakemake, make_example)  # noqa: F821 (snakemake is injected by the script directive)
