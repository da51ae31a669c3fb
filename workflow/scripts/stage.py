import os

# Threads waiting at the end of an OpenMP region (torch, scikit-learn's k-means) sleep
# instead of spinning: with other jobs on the cores a spinning thread takes the CPU that
# the thread still working needs (bench/loaded.py: pretraining 3.7x slower per epoch beside
# a 2-thread load when spinning, 1.6x when passive). Set before torch or sklearn load libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from seiscluster.stagekeys import stage_function
from seiscluster.workflow import end_job, run_stage

run_stage(snakemake, stage_function(snakemake.rule))  # noqa: F821 (snakemake is injected by the script directive)
end_job()
