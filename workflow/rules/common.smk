# The runs of this invocation (one run, or the runs of a sweep), composed and validated
# before any rule runs, and the keys of their stages (seiscluster.stagekeys).
#
# Keyed stage rules write to results/stages/<stage>/{key}/ and look up their params and
# inputs by key; per-run rules (wildcard {run}) link the stage products into results/<run>/
# and write its config, provenance and report; the sweep rule summarises the runs.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from seiscluster.config import to_container, to_yaml
from seiscluster.errors import InputError
from seiscluster.stagekeys import STAGES, STORE, Registry, code_hash, stage_param, stage_stems
from seiscluster.sweep import as_list, plan
from seiscluster.workflow import CODE


def checked(check, *args):
    """Run a configuration check; its InputError stops the workflow before any rule."""
    try:
        return check(*args)
    except InputError as err:
        raise WorkflowError(f"seiscluster configuration: {err}") from None


def section(node):
    """A config node as plain Python (lists, dicts, str enums) for `params:`."""
    return to_container(node)


def check_tremor_config(cfg):
    """What compose() cannot check in a run's tremor configuration: the waveform files
    looked up, and the sampling rate's limits where it is known without reading data."""
    if "tremor" not in [b.value for b in cfg.branches]:
        return
    # imported here: they import scikit-learn and scipy.signal (seconds of every start-up)
    from seiscluster.tremor.stages import check_config as check_tremor

    checked(check_tremor, section(cfg.data.waveforms), section(cfg.tremor.preprocess),
            section(cfg.tremor.spectrogram))


PLAN = checked(plan, checked(as_list, config.get("overrides"), "overrides"),
               checked(as_list, config.get("sweep"), "sweep"), config.get("run"),
               Path(workflow.basedir) / "conf")
CONFIGS = PLAN.configs
KEYS = Registry()
for _name, _cfg in CONFIGS.items():
    check_tremor_config(_cfg)
    KEYS.add(_name, _cfg)

#: Threads of the parallel rules; Snakemake caps them at --cores (and it works with --report,
#: which has no core count).
MAX_THREADS = 64
RUN = "results/{run}"
LOGS = f"{RUN}/logs"
SWEEP = "results/sweeps/{sweep}"


wildcard_constraints:
    run="|".join(re.escape(name) for name in CONFIGS),
    sweep=re.escape(PLAN.sweep_name or "-"),


# ----------------------------------------------------------------------- keyed stages


def keyed(stage):
    """Folder of a stage's outputs under its key."""
    return f"{STORE}/{stage}/{{key}}"


def stage_log(stage):
    return f"{keyed(stage)}/{stage}.log"


def stage_benchmark(stage):
    return f"{keyed(stage)}/benchmark.tsv"


def stage_record(stage):
    """The stage job's provenance record (written by seiscluster.workflow.run_stage)."""
    return f"{keyed(stage)}/provenance.json"


def key_config(wildcards):
    """The configuration of a run that uses the job's key (all such runs agree on it)."""
    return CONFIGS[KEYS.instance(wildcards.key)[1]]


def config_params(stage):
    """The stage's `params:`: one function per config value it takes (STAGES[stage].reads
    and .runtime)."""
    return {arg: _config_param(stage, arg) for arg in
            [*STAGES[stage].reads, *STAGES[stage].runtime]}


def code_param(stage):
    """The `params:` entry giving a stage job the hash of the code its key was made with
    (computed once here, not again in every job's process)."""
    function = STAGES[stage].function
    return {CODE: lambda wildcards: code_hash(function)}


def _config_param(stage, arg):
    def value(wildcards):
        return stage_param(stage, arg, key_config(wildcards))

    return value


def upstream(stage, output):
    """An output of an upstream stage, under the key the job's stage depends on."""

    def path(wildcards):
        key = KEYS.upstream_key(wildcards.key, stage)
        return str(getattr(rules, stage).output[output]).format(key=key)

    return path


def stage_inputs(stage):
    """The products of upstream stages a stage reads (STAGES[stage].inputs, and its
    optional_inputs when that upstream stage runs) and the user's files it reads
    (STAGES[stage].sources), by the keyword its function takes them as."""
    spec = STAGES[stage]
    sources = {None: None, "model": model_source, "waveforms": waveform_inputs}[spec.sources]

    def files(wildcards):
        out = sources(wildcards) if sources else {}
        present = KEYS.upstream_keys(wildcards.key)
        for arg, product in spec.optional_inputs.items():
            if product.split(".")[0] in present:
                out[arg] = upstream(*product.split("."))(wildcards)
        for arg, product in spec.inputs.items():
            out[arg] = upstream(*product.split("."))(wildcards)
        return out

    return files


def stage_outputs(stage):
    """A stage's products (STAGES[stage].outputs) under its key: folders as directory(),
    figures in Snakemake's report with their caption; and its provenance record."""
    spec = STAGES[stage]
    out = {}
    for name, product in spec.outputs.items():
        path = f"{keyed(stage)}/{product.path.rstrip('/')}"
        if product.is_folder:
            path = directory(path)
        elif product.caption:
            path = report(path, caption=f"../report/{product.caption}.rst",
                          category=spec.branch.capitalize(), subcategory=product.subcategory)
        out[name] = path
    return {**out, "record": stage_record(stage)}


def stage_folders(stage):
    """The `params:` naming a stage's extra folders (STAGES[stage].folders), kept across
    attempts (a rerun resumes the pretraining), so not outputs."""
    return {arg: _folder(stage, folder) for arg, folder in STAGES[stage].folders.items()}


def _folder(stage, folder):
    def path(wildcards):
        return f"{keyed(stage)}/{folder}".format(key=wildcards.key)

    return path


def model_source(wildcards):
    """The user's model file as an input, so that a changed file reruns the branch."""
    path = key_config(wildcards).data.velocity.path
    return {"path": path} if path else {}


def waveform_inputs(wildcards):
    """Records the spectrogram stage reads: the example's files or the user's files."""
    cfg = key_config(wildcards)
    source = cfg.data.waveforms.source.value
    if source == "example":
        return {"files": upstream("tremor_example", "waveforms")(wildcards)}
    if source == "files":
        from seiscluster.tremor.waveforms import expand_files

        return {"files": expand_files(list(cfg.data.waveforms.files))}
    return {}


def gpus(wildcards):
    return 1 if key_config(wildcards).trainer.accelerator.value == "gpu" else 0


# ----------------------------------------------------------------------- run folders


def config_of(run):
    return CONFIGS[run]


def run_stages(run):
    """The stages of a run, upstream first."""
    return list(KEYS.runs[run])


def run_branches(run):
    return [b.value for b in config_of(run).branches]


def run_methods(wildcards):
    cfg = config_of(wildcards.run)
    return [m.value for m in cfg.velocity.methods] if "velocity" in run_branches(
        wildcards.run) else []


def config_text(wildcards):
    return to_yaml(config_of(wildcards.run))


def run_overrides(wildcards):
    return list(PLAN.run(wildcards.run).overrides)


def run_folder(wildcards):
    return PLAN.run(wildcards.run).folder


def link_outputs(stage):
    """Where a stage's products show in results/<run>/: outputs, log, benchmark, extras."""
    spec = STAGES[stage]
    prefix = keyed(stage) + "/"
    products = []
    for f in _products(stage):
        path = f"{RUN}/{spec.folder}/{str(f).removeprefix(prefix)}"
        products.append(directory(path) if f.is_directory else path)
    return [*products, f"{LOGS}/{stage}.log", f"{LOGS}/benchmarks/{stage}.tsv",
            *(directory(f"{RUN}/{spec.folder}/{extra}") for extra in spec.links)]


def _products(stage):
    """The output files of a keyed stage rule, less its provenance record."""
    return [f for name, f in workflow.get_rule(stage).output.items() if name != "record"]


def _link_targets(stage, key):
    spec = STAGES[stage]
    targets = [*map(str, _products(stage)), stage_log(stage), stage_benchmark(stage),
               *(f"{keyed(stage)}/{extra}" for extra in spec.links)]
    return [t.format(key=key) for t in targets]


def linked_products(stage):
    """The keyed products a run's link rule needs (its inputs)."""

    def files(wildcards):
        key = KEYS.key(wildcards.run, stage)
        return [str(f).format(key=key) for f in _products(stage)]

    return files


def link_pairs(stage):
    """Run-folder link -> keyed target, for the link rule's `params`."""

    def pairs(wildcards):
        links = [str(p).format(run=wildcards.run) for p in link_outputs(stage)]
        return dict(zip(links, _link_targets(stage, KEYS.key(wildcards.run, stage))))

    return pairs


def link_stems(stage):
    """Run-folder link -> file-name stem of its files (STAGES[stage].stems), for the link
    rule's `params`: a new stem relinks, the stage does not rerun."""

    def stems(wildcards):
        named = stage_stems(stage, config_of(wildcards.run))
        prefix = f"{keyed(stage)}/"
        return {str(p).format(run=wildcards.run): named[str(f).removeprefix(prefix)]
                for p, f in zip(link_outputs(stage), _products(stage))
                if str(f).removeprefix(prefix) in named}

    return stems


def record_inputs(wildcards):
    """The run's config, its linked products and the provenance records of its stages."""
    run = wildcards.run
    products = [str(p).format(run=run) for stage in run_stages(run)
                for p in link_outputs(stage)]
    records = {f"stage_{stage}": stage_record(stage).format(key=KEYS.key(run, stage))
               for stage in run_stages(run)}
    return {"config": f"results/{run}/config.yaml", "products": products} | records


def report_inputs(wildcards):
    """Every product the report shows: the run's config and provenance record, and the
    products its stages declare for the report (Product.report), as linked in the run."""
    run = wildcards.run
    files = {"config": f"results/{run}/config.yaml",
             "provenance": f"results/{run}/provenance.json"}
    for stage in run_stages(run):
        spec = STAGES[stage]
        files |= {product.report: f"results/{run}/{spec.folder}/{product.path.rstrip('/')}"
                  for product in spec.outputs.values() if product.report}
    return files


# ----------------------------------------------------------------------- sweep


def sweep_runs(wildcards):
    """The runs as the summary reads them: name, folder and swept values."""
    return PLAN.summary_runs()


def sweep_inputs(wildcards):
    """Every run's report and provenance record (so each run folder is complete)."""
    return [f"results/{name}/{leaf}" for name in CONFIGS
            for leaf in ("report.html", "provenance.json")]


def final_outputs():
    runs = [f"results/{name}/{leaf}" for name in CONFIGS
            for leaf in ("config.yaml", "provenance.json", "report.html")]
    if PLAN.sweep_name is None:
        return runs
    sweep = f"results/sweeps/{PLAN.sweep_name}"
    return [*runs, f"{sweep}/summary.csv", f"{sweep}/index.html"]


# ----------------------------------------------------------------------- exit


def end_run(log=None):
    """Cancel the re-evaluation timers Snakemake's job rate limiter (--max-jobs-per-timespan,
    100/1s by default) starts after each scheduling round: they are not daemon threads, so
    the finished process waited up to a second for the last one before exiting (about 1.4 s
    of every run's wall time, measured on a one-rule workflow). The scheduler has returned
    when these handlers run, so nothing waits for them any more. And leave the objects of
    the run (its DAG, jobs, configurations) out of the garbage collections of the process's
    exit (gc.freeze; about 0.6 s of a velocity run's teardown, see seiscluster.workflow.end_job)."""
    import gc
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
    gc.freeze()


onsuccess:
    end_run()


onerror:
    end_run()
