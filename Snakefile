# seiscluster workflow: `snakemake --cores N` runs the study that conf/ describes.
# User overrides in Hydra syntax, and sweeps (one run per combination, one DAG):
#   snakemake --cores 2 --config run=k6 overrides='["velocity.kmeans.n_clusters=6"]'
#   snakemake --cores 2 --config sweep='["velocity.kmeans.metric=euclidean,dtw"]'
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/apply_common.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
        apply_outputs(),
        compare_outputs(),
    default_target: True
