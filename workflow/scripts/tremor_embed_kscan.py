from seiscluster.tremor.deep_stages import embed_kscan
from seiscluster.workflow import run_stage

run_stage(snakemake, embed_kscan)  # noqa: F821 (snakemake is injected by the script directive)
