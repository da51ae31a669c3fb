from seiscluster.tremor.apply import apply
from seiscluster.workflow import run_stage

run_stage(snakemake, apply)  # noqa: F821 (snakemake is injected by the script directive)
