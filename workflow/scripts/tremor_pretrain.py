from seiscluster.tremor.deep_stages import pretrain
from seiscluster.workflow import run_stage

run_stage(snakemake, pretrain)  # noqa: F821 (snakemake is injected by the script directive)
