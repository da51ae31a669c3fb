# Monitoring and model comparison helpers (apply.smk runs them): a run with `apply.run` set labels its records
# (data.waveforms) with the clustering of that finished run, without retraining
# (seiscluster.tremor.apply). In results/<run>/apply/, metrics.json and timeline.png are
# the outputs of tremor_apply; the labels series (labels.csv), the record of labelled days
# (days.csv), what was applied (model.json) and the log of every run (history.log) are
# kept between runs (not outputs: Snakemake would delete them), so that the incremental
# mode labels only the days not labelled yet.
from omegaconf import OmegaConf


def apply_runs():
    """The runs of this invocation that apply a trained run."""
    return [name for name, cfg in CONFIGS.items() if cfg.apply.run]


def _check_apply(name):
    # imported here: the tremor modules import scipy.signal and xarray (most of a second
    # of every start-up, for runs that apply nothing)
    from seiscluster.tremor.apply import ApplySettings, load_trained

    cfg = CONFIGS[name]
    settings = checked(ApplySettings.from_config, section(cfg.apply))
    checked(load_trained, cfg.apply.run, settings)


for _name in apply_runs():
    _check_apply(_name)


def apply_outputs():
    return [f"results/{name}/apply/{leaf}" for name in apply_runs()
            for leaf in ("metrics.json", "timeline.png")]


def apply_inputs(wildcards):
    """The new records: the user's files, or the run's own example records (its tremor
    branch's example stage, with the truth)."""
    cfg = config_of(wildcards.run)
    source = cfg.data.waveforms.source.value
    if source == "files":
        from seiscluster.tremor.waveforms import expand_files

        return {"files": expand_files(list(cfg.data.waveforms.files))}
    if source == "example":
        if "tremor_example" not in run_stages(wildcards.run):
            raise WorkflowError("seiscluster configuration: apply with data.waveforms.source "
                                "example needs the tremor branch in branches (its example "
                                "records); or give the new records as files, SDS or FDSN.")
        key = KEYS.key(wildcards.run, "tremor_example")
        return {"files": str(rules.tremor_example.output.waveforms).format(key=key),
                "truth": str(rules.tremor_example.output.truth).format(key=key)}
    return {}


def apply_param(path):
    """A config value of the run, as plain Python (dotted ``path``)."""

    def value(wildcards):
        return section(OmegaConf.select(config_of(wildcards.run), path))

    return value


def apply_state(leaf):
    def path(wildcards):
        return f"results/{wildcards.run}/apply/{leaf}"

    return path


def apply_report_inputs(wildcards):
    """The apply products the report shows (none when the run applies nothing)."""
    if not config_of(wildcards.run).apply.run:
        return {}
    return {"apply_metrics": f"results/{wildcards.run}/apply/metrics.json",
            "apply_timeline": f"results/{wildcards.run}/apply/timeline.png"}


# Model comparison: a run with velocity.compare.run set assigns its model's profiles to
# that finished run's centroids (seiscluster.velocity.stages.compare); outputs in
# results/<run>/velocity/compare/.
COMPARED = ("applied.nc", "contingency.csv", "metrics.json", "agreement.png")


def compare_runs():
    """The runs of this invocation that compare their model with a finished run."""
    return [name for name, cfg in CONFIGS.items() if cfg.velocity.compare.run]


def compared_clusters(run):
    """The finished run's clusters.nc that a run's model is compared with (checked)."""
    from seiscluster.velocity.apply import run_clusters

    cmp = config_of(run).velocity.compare
    return checked(run_clusters, cmp.run, cmp.method.value)


for _name in compare_runs():
    compared_clusters(_name)


def compare_outputs():
    return [f"results/{name}/velocity/compare/{leaf}" for name in compare_runs()
            for leaf in COMPARED]


def compare_inputs(wildcards):
    """The run's ingested model (its velocity_profiles stage) and the finished run's
    clusters."""
    key = KEYS.key(wildcards.run, "velocity_profiles")
    return {"path": str(rules.velocity_profiles.output.model).format(key=key),
            "clusters": compared_clusters(wildcards.run)}


def compared_model_name(wildcards):
    """The user's model file (the rule reads its ingested copy), for titles and metrics."""
    return config_of(wildcards.run).data.velocity.path or "embedded example model"


def compare_report_inputs(wildcards):
    """The comparison products the report shows (none when the run compares nothing)."""
    if not config_of(wildcards.run).velocity.compare.run:
        return {}
    return {f"compare_{Path(leaf).stem}": f"results/{wildcards.run}/velocity/compare/{leaf}"
            for leaf in ("metrics.json", "agreement.png")}
