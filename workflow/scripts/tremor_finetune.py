from seiscluster.tremor.deep_stages import finetune
from seiscluster.workflow import run_stage

run_stage(snakemake, finetune)  # noqa: F821 (snakemake is injected by the script directive)
