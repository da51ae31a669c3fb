from seiscluster.stagekeys import stage_function
from seiscluster.workflow import run_stage

run_stage(snakemake, stage_function(snakemake.rule))  # noqa: F821 (snakemake is injected by the script directive)
