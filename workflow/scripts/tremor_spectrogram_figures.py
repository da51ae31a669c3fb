from seiscluster.tremor.stages import spectrogram_figures
from seiscluster.workflow import run_stage

run_stage(snakemake, spectrogram_figures)  # noqa: F821 (snakemake is injected by the script directive)
