"""Stage keys: what each stage depends on, and the jobs Snakemake schedules from them."""

import dataclasses
import inspect
import json
import shutil

import pytest
from workflow_runs import FAST, TREMOR_FAST, snakemake, stage_jobs

from seiscluster import stagekeys
from seiscluster.config import compose
from seiscluster.stagekeys import (
    PACKAGE,
    PACKAGE_DIR,
    STAGES,
    Registry,
    active_stages,
    code_hash,
    code_sources,
    stage_function,
    stage_keys,
    stage_param,
    stage_params,
    stage_stems,
)

WORKFLOW_REPORT = PACKAGE_DIR.parents[1] / "workflow" / "report"
TREMOR_STAGES = ["tremor_example", "tremor_spectrograms", "tremor_features",
                 "tremor_spectrogram_figures", "tremor_pretrain", "tremor_embed_kscan",
                 "tremor_finetune", "tremor_deep_figures", "tremor_labels"]


def keys(overrides):
    return {stage: entry["key"] for stage, entry in stage_keys(compose(overrides)).items()}


def changed(overrides, base=()):
    before, after = keys(list(base)), keys([*base, *overrides])
    assert set(before) == set(after)
    return {stage for stage in before if before[stage] != after[stage]}


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_value_a_stage_reads_is_an_argument_of_its_function(stage):
    params = inspect.signature(stage_function(stage)).parameters
    assert set(STAGES[stage].reads) | set(STAGES[stage].runtime) <= set(params)
    for upstream in STAGES[stage].upstream:
        assert list(STAGES).index(upstream) < list(STAGES).index(stage)


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_declaration_fits_its_function_and_its_upstream_stages(stage):
    """Every input, output and folder a stage declares is an argument of its function
    (the rule passes them by name); every input is an output of one of its upstream stages
    and every figure's caption file exists."""
    spec = STAGES[stage]
    taken = inspect.signature(stage_function(stage)).parameters
    named = [*spec.inputs, *spec.optional_inputs, *spec.outputs, *spec.folders]
    assert [arg for arg in named if arg not in taken] == []
    for product in {**spec.inputs, **spec.optional_inputs}.values():
        upstream, output = product.split(".")
        assert upstream in spec.upstream and output in STAGES[upstream].outputs, product
    for product in spec.outputs.values():
        if product.caption:
            assert (WORKFLOW_REPORT / f"{product.caption}.rst").is_file(), product


def test_report_inputs_are_named_once_and_every_figure_has_a_caption():
    from seiscluster.report import caption

    products = [p for spec in STAGES.values() for p in spec.outputs.values()]
    names = [p.report for p in products if p.report]
    assert len(names) == len(set(names))
    for product in products:
        if product.path.endswith(".png"):
            assert product.report and caption(product.report), product


def test_active_stages_follow_branches_methods_and_choices():
    assert active_stages(compose(["branches=[tremor]"])) == TREMOR_STAGES
    velocity = active_stages(compose(["branches=[velocity]", "velocity.methods=[kmeans]",
                                      "velocity.kmeans.n_clusters=4"]))
    assert velocity == ["velocity_profiles", "velocity_kmeans", "velocity_kmeans_figures"]
    entry = stage_keys(compose(["branches=[velocity]", "velocity.kmeans.n_clusters=4"]))
    assert set(entry["velocity_kmeans"]["upstream"]) == {"velocity_profiles"}


def test_a_changed_value_changes_the_keys_of_its_stage_and_downstream_only():
    assert changed(["tremor.dec.kl_weight=0.2"]) == {"tremor_finetune", "tremor_deep_figures",
                                                     "tremor_labels"}
    assert changed(["tremor.features.frame_seconds=2.5"]) == {"tremor_features",
                                                              "tremor_labels"}
    assert changed(["tremor.primary_labels=dec"]) == {"tremor_labels"}
    assert changed(["tremor.spectrogram.pooling=max"]) == {
        "tremor_spectrograms", "tremor_features", "tremor_spectrogram_figures",
        "tremor_pretrain", "tremor_embed_kscan", "tremor_finetune", "tremor_deep_figures",
        "tremor_labels"}
    assert changed(["velocity.profiles.dz=2"]) == {
        "velocity_profiles", "velocity_elbow", "velocity_kmeans", "velocity_som",
        "velocity_kmeans_figures", "velocity_som_figures"}
    assert changed(["velocity.som.sigma=0.5"]) == {"velocity_som", "velocity_som_figures"}
    assert changed(["tremor.pretrain.lr=0.002"]) == {
        "tremor_pretrain", "tremor_embed_kscan", "tremor_finetune", "tremor_deep_figures",
        "tremor_labels"}
    assert changed(["velocity.plot.dpi=80"]) == {
        "velocity_elbow", "velocity_kmeans", "velocity_kmeans_figures", "velocity_som_figures"}


def test_keys_are_stable_and_unchanged_by_values_no_stage_reads():
    assert keys([]) == keys([])
    assert changed(["run=other"]) == set()


def test_runtime_settings_reach_the_stage_but_not_its_key(monkeypatch):
    spec = STAGES["velocity_som"]
    monkeypatch.setitem(STAGES, "velocity_som", dataclasses.replace(
        spec, runtime={"threads_hint": "velocity.plot.dpi"}))
    assert stage_params("velocity_som", compose(["velocity.plot.dpi=80"]))["threads_hint"] == 80
    assert stage_param("velocity_som", "threads_hint", compose(["velocity.plot.dpi=80"])) == 80


def test_names_and_speed_only_settings_change_no_key():
    """File-name stems and the FDSN cache's place change no stored result, so no key:
    changing them reruns nothing (the run's link rule renames). torch's thread count does
    change the rounding of the training, so it stays in the training stages' keys."""
    assert changed(["velocity.kmeans.figbase=mine", "velocity.som.figbase=ours",
                    "data.waveforms.fdsn_cache=elsewhere"]) == set()
    assert changed(["trainer.num_threads=1"]) == {
        "tremor_pretrain", "tremor_embed_kscan", "tremor_finetune", "tremor_deep_figures",
        "tremor_labels"}
    # the elbow scan fits every profile: the final fit's k and sample are not in its key
    assert changed(["velocity.kmeans.fit_sample_size=100"]) == {
        "velocity_kmeans", "velocity_kmeans_figures"}
    assert changed(["velocity.kmeans.n_init=2"]) == {
        "velocity_elbow", "velocity_kmeans", "velocity_kmeans_figures"}


def test_speed_only_settings_reach_the_stage_and_stems_do_not():
    cfg = compose(["data.waveforms.fdsn_cache=elsewhere", "velocity.kmeans.figbase=mine"])
    assert stage_params("tremor_spectrograms", cfg)["waveforms"]["fdsn_cache"] == "elsewhere"
    assert stage_param("tremor_spectrograms", "waveforms", cfg)["fdsn_cache"] == "elsewhere"
    kmeans = stage_params("velocity_kmeans", cfg)["kmeans"]
    assert "figbase" not in kmeans and "fit_sample_size" in kmeans
    assert set(stage_params("velocity_elbow", cfg)["kmeans"]).isdisjoint(
        {"figbase", "fit_sample_size", "n_clusters"})
    assert stage_stems("velocity_kmeans", cfg) == {"seisgo": "mine"}
    assert stage_stems("velocity_som", cfg) == {"seisgo": "som"}


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_param_is_the_stage_params_value(stage):
    cfg = compose(["branches=[velocity,tremor]"])
    assert {arg: stage_param(stage, arg, cfg) for arg in stage_params(stage, cfg)} == \
        stage_params(stage, cfg)
    assert "velocity_som" not in changed(["velocity.plot.dpi=80"])


def test_a_user_file_path_is_part_of_the_ingest_key(tmp_path):
    model = tmp_path / "model.nc"
    model.write_bytes(b"")
    assert "velocity_profiles" in changed([f"data.velocity.path={model}"])


def test_code_of_a_stage_is_what_its_function_reaches():
    assert "seiscluster.tremor.dec" in code_sources(STAGES["tremor_finetune"].function)
    assert "seiscluster.tremor.dec" not in code_sources(STAGES["tremor_pretrain"].function)
    profiles = code_sources(STAGES["velocity_profiles"].function)
    assert "seiscluster.velocity.profiles" in profiles
    assert "seiscluster.velocity.som" not in profiles
    assert "def fit_som" not in profiles["seiscluster.velocity.stages"]
    assert "seiscluster.velocity.som" in code_sources(STAGES["velocity_som"].function)


def _copy_package(tmp_path, name):
    root = tmp_path / name / "seiscluster"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_code_change_changes_the_keys_of_the_stages_that_run_it(tmp_path):
    base, edited = _copy_package(tmp_path, "a"), _copy_package(tmp_path, "b")
    _edit(edited / "velocity/som.py", "import math", "import math  # a comment\nimport os")
    _edit(edited / "velocity/stages.py", '"""Self-organizing map fit;',
          '"""A self-organizing map fit;')
    for stage, differs in [("velocity_som", True), ("velocity_profiles", False),
                           ("velocity_kmeans", False), ("tremor_finetune", False)]:
        function = STAGES[stage].function
        assert (code_hash(function, base) != code_hash(function, edited)) is differs, stage


def test_comments_and_layout_do_not_change_the_code_hash(tmp_path):
    base, edited = _copy_package(tmp_path, "a"), _copy_package(tmp_path, "b")
    _edit(edited / "tremor/dec.py", "import math", "import math  # a comment\n\n")
    function = STAGES["tremor_finetune"].function
    assert code_hash(function, base) == code_hash(function, edited)


def _hash_in_a_new_process(function, root):
    """code_hash as a new invocation computes it (nothing parsed yet in this process)."""
    for cached in (stagekeys._text, stagekeys._tree, stagekeys._module_code):
        cached.cache_clear()
    return code_hash.__wrapped__(function, root)


def test_code_hash_is_kept_between_invocations_until_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _copy_package(tmp_path, "a")
    function = STAGES["velocity_som"].function
    name = f"{root}:{function}"

    def keep(hash_):  # what the cache holds for the function, with this hash
        entry = json.loads(stagekeys.cache_file().read_text())[name]
        stagekeys.cache_file().write_text(json.dumps({name: {**entry, "hash": hash_}}))

    first = _hash_in_a_new_process(function, root)
    entry = json.loads(stagekeys.cache_file().read_text())[name]
    assert entry["hash"] == first and f"{PACKAGE}.velocity.som" in entry["modules"]
    keep("kept")
    assert _hash_in_a_new_process(function, root) == "kept"  # read, not computed
    _edit(root / "velocity/som.py", "import math", "import math\nimport os")
    edited = _hash_in_a_new_process(function, root)
    assert edited not in (first, "kept")
    keep("kept")
    (root / "velocity/new_module.py").write_text("")  # the package's list of modules
    assert _hash_in_a_new_process(function, root) == edited
    stagekeys.cache_file().write_text("not JSON")  # an unreadable cache is rebuilt
    assert _hash_in_a_new_process(function, root) == edited
    assert json.loads(stagekeys.cache_file().read_text())[name]["hash"] == edited


def test_registry_finds_each_instance_and_its_upstream_keys():
    registry = Registry()
    for name, kl in (("a", 0.1), ("b", 0.2)):
        registry.add(name, compose([*TREMOR_FAST, f"tremor.dec.kl_weight={kl}"]))
    pretrain = registry.key("a", "tremor_pretrain")
    assert pretrain == registry.key("b", "tremor_pretrain")
    assert registry.instance(pretrain) == ("tremor_pretrain", "a")
    finetune_b = registry.key("b", "tremor_finetune")
    assert finetune_b != registry.key("a", "tremor_finetune")
    assert registry.instance(finetune_b) == ("tremor_finetune", "b")
    assert registry.upstream_key(finetune_b, "tremor_pretrain") == pretrain


def test_dry_run_of_a_dec_sweep_pretrains_once(tmp_path):
    proc = snakemake(tmp_path, TREMOR_FAST, "-n", run="dec",
                     sweep=["tremor.dec.kl_weight=0.05,0.1,0.2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_jobs(proc.stdout) == {
        "tremor_example": 1, "tremor_spectrograms": 1, "tremor_spectrogram_figures": 1,
        "tremor_features": 1, "tremor_pretrain": 1, "tremor_embed_kscan": 1,
        "tremor_finetune": 3, "tremor_deep_figures": 3, "tremor_labels": 3}


def test_dry_run_of_a_velocity_sweep_shares_the_stages_that_agree(tmp_path):
    proc = snakemake(tmp_path, FAST, "-n", run="v",
                     sweep=["velocity.kmeans.metric=euclidean,dtw",
                            "velocity.profiles.spacing=1,2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_jobs(proc.stdout) == {
        "velocity_profiles": 2, "velocity_elbow": 4,
        "velocity_kmeans": 4, "velocity_kmeans_figures": 4, "velocity_som": 2,
        "velocity_som_figures": 2}
    text = proc.stdout
    assert "results/sweeps/v/summary.csv" in text and "results/sweeps/v/index.html" in text
    assert "results/v+metric=dtw+spacing=2/report.html" in text
