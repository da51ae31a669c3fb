# Configuration of the run, composed once with Hydra and validated before any rule runs.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from seiscluster.config import compose, to_container, to_yaml
from seiscluster.errors import InputError
from seiscluster.tremor.deep_stages import check_config as check_deep
from seiscluster.tremor.stages import check_config as check_tremor
from seiscluster.tremor.waveforms import expand_files


def user_overrides():
    """Hydra overrides from `--config overrides='[...]'` plus `--config run=NAME`."""
    given = config.get("overrides") or []
    given = [given] if isinstance(given, str) else list(given)
    if config.get("run") is not None:
        given.append(f"run={config['run']}")
    return [str(item) for item in given]


def checked(check, *args):
    """Run a configuration check; its InputError stops the workflow before any rule."""
    try:
        return check(*args)
    except InputError as err:
        raise WorkflowError(f"seiscluster configuration: {err}") from None


CFG = checked(compose, user_overrides(), Path(workflow.basedir) / "conf")

#: Threads of the parallel rules; Snakemake caps them at --cores (and it works with --report,
#: which has no core count).
MAX_THREADS = 64
RESULTS = f"results/{CFG.run}"
VEL = f"{RESULTS}/velocity"
TRE = f"{RESULTS}/tremor"
LOGS = f"{RESULTS}/logs"
BRANCHES = [b.value for b in CFG.branches]
METHODS = [m.value for m in CFG.velocity.methods] if "velocity" in BRANCHES else []


def section(node):
    """A config node as plain Python (lists, dicts, str enums) for `params:`."""
    return to_container(node)


if "tremor" in BRANCHES:
    checked(check_tremor, section(CFG.data.waveforms), section(CFG.tremor.preprocess),
            section(CFG.tremor.spectrogram))
    checked(check_deep, *(section(CFG.tremor[key]) for key in
                          ("model", "pretrain", "kscan", "dec")), section(CFG.trainer))

#: The tremor figures, in the order the report shows them.
TREMOR_FIGURES = ("overview", "spectrogram_examples", "losses", "kscan", "tsne",
                  "clusters_over_time", "cluster_spectrograms", "reconstructions")


def model_source(wildcards):
    """The user's model file as an input, so that a changed file reruns the branch."""
    path = CFG.data.velocity.path
    return {"path": path} if path else {}


def elbow_outputs(wildcards):
    """The elbow choice feeds k-means only when velocity.kmeans.n_clusters is null."""
    if CFG.velocity.kmeans.n_clusters is not None:
        return {}
    return {"choice": f"{VEL}/elbow/choice.json", "table": f"{VEL}/elbow/elbow.csv"}


def report_inputs(wildcards):
    """Every product the report shows, named `<method>_<key>` per clustering method."""
    files = {"config": f"{RESULTS}/config.yaml"} | tremor_report_inputs()
    if "velocity" not in BRANCHES:
        return files
    files["profiles"] = f"{VEL}/profiles.nc"
    if "kmeans" in METHODS and CFG.velocity.kmeans.n_clusters is None:
        files |= {"elbow_choice": f"{VEL}/elbow/choice.json",
                  "elbow_table": f"{VEL}/elbow/elbow.csv",
                  "elbow_figure": f"{VEL}/elbow/elbow.png"}
    for method in METHODS:
        files |= {f"{method}_metrics": f"{VEL}/{method}/metrics.json",
                  f"{method}_cluster_figure": f"{VEL}/{method}/clusters.png",
                  f"{method}_map_figure": f"{VEL}/{method}/cluster_map.png"}
    if "som" in METHODS:
        files["som_som_figure"] = f"{VEL}/som/som_maps.png"
    return files


def waveform_inputs(wildcards):
    """Records the spectrogram stage reads: the example's files or the user's files."""
    source = CFG.data.waveforms.source.value
    if source == "example":
        return {"files": f"{TRE}/example/waveforms"}
    if source == "files":
        return {"files": expand_files(list(CFG.data.waveforms.files))}
    return {}


def tremor_truth(wildcards):
    """The example's true regimes, for the ARI in the metrics (the example only)."""
    if CFG.data.waveforms.source.value == "example":
        return {"truth": f"{TRE}/example/truth.csv"}
    return {}


def tremor_report_inputs():
    """The tremor products the report shows (none when the branch is off)."""
    if "tremor" not in BRANCHES:
        return {}
    return {
        "spectrograms": f"{TRE}/spectrograms.zarr",
        "skipped": f"{TRE}/skipped_windows.csv",
        "kscan_choice": f"{TRE}/kscan/choice.json",
        "dec_metrics": f"{TRE}/dec/metrics.json",
    } | {f"figure_{name}": f"{TRE}/figures/{name}.png" for name in TREMOR_FIGURES}


def final_outputs():
    return [f"{RESULTS}/report.html", f"{RESULTS}/config.yaml"]
