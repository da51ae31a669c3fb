# Configuration of the run, composed once with Hydra and validated before any rule runs.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from seiscluster.config import compose, to_container, to_yaml
from seiscluster.errors import InputError


def user_overrides():
    """Hydra overrides from `--config overrides='[...]'` plus `--config run=NAME`."""
    given = config.get("overrides") or []
    given = [given] if isinstance(given, str) else list(given)
    if config.get("run") is not None:
        given.append(f"run={config['run']}")
    return [str(item) for item in given]


try:
    CFG = compose(user_overrides(), Path(workflow.basedir) / "conf")
except InputError as err:
    raise WorkflowError(f"seiscluster configuration: {err}") from None

#: Threads of the parallel rules; Snakemake caps them at --cores (and it works with --report,
#: which has no core count).
MAX_THREADS = 64
RESULTS = f"results/{CFG.run}"
VEL = f"{RESULTS}/velocity"
LOGS = f"{RESULTS}/logs"
METHODS = [m.value for m in CFG.velocity.methods]


def section(node):
    """A config node as plain Python (lists, dicts, str enums) for `params:`."""
    return to_container(node)


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
    files = {"config": f"{RESULTS}/config.yaml", "profiles": f"{VEL}/profiles.nc"}
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


def final_outputs():
    return [f"{RESULTS}/report.html", f"{RESULTS}/config.yaml"]
