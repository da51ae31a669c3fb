"""Sweep expansion: Hydra override grammar -> named runs, each composed and validated."""

import re

import pytest

from seiscluster.errors import InputError
from seiscluster.sweep import (
    MAX_NAME,
    Run,
    as_list,
    expand,
    parse_sweep,
    plan,
    short_labels,
)

SAFE_NAME = re.compile(r"^[A-Za-z0-9._=+-]+$")


def runs_of(sweep, overrides=(), base="default"):
    return expand(list(overrides), parse_sweep(list(overrides), sweep), base)


def test_comma_lists_expand_into_the_cartesian_product():
    runs = runs_of(["velocity.kmeans.metric=euclidean,dtw", "velocity.profiles.spacing=1,2"],
                   overrides=["branches=[velocity]"])
    assert [r.name for r in runs] == [
        "default+metric=euclidean+spacing=1", "default+metric=euclidean+spacing=2",
        "default+metric=dtw+spacing=1", "default+metric=dtw+spacing=2"]
    assert runs[3].overrides == ("branches=[velocity]", "velocity.kmeans.metric=dtw",
                                 "velocity.profiles.spacing=2")
    assert runs[3].swept == {"velocity.kmeans.metric": "dtw", "velocity.profiles.spacing": 2}
    assert runs[3].folder == "results/default+metric=dtw+spacing=2"


def test_range_and_choice_sweeps():
    runs = runs_of(["velocity.som.niteration=range(1000,4000,1000)",
                    "velocity.kmeans.n_init=choice(1,10)"], base="som")
    assert len(runs) == 6
    assert runs[0].name == "som+niteration=1000+n_init=1"
    assert [r.swept["velocity.som.niteration"] for r in runs[::2]] == [1000, 2000, 3000]
    assert {r.swept["velocity.kmeans.n_init"] for r in runs} == {1, 10}


def test_glob_sweeps_config_group_options():
    runs = runs_of(["data=glob(c*)"])
    assert [r.name for r in runs] == ["default+data=cascadia"]


def test_names_are_stable_and_filesystem_safe():
    sweep = ["velocity.profiles.zrange=[0,60],[0,40]", "velocity.tag='a b',c/d"]
    first, second = runs_of(sweep), runs_of(sweep)
    assert [r.name for r in first] == [r.name for r in second]
    assert first[0].name == "default+zrange=0_60+tag=a_b"
    assert all(SAFE_NAME.match(r.name) for r in first)
    assert first[0].swept["velocity.profiles.zrange"] == [0, 60]


def test_colliding_leaf_names_use_longer_key_paths():
    assert short_labels(["velocity.kmeans.random_state", "velocity.som.random_state",
                         "seed"]) == ["kmeans.random_state", "som.random_state", "seed"]
    runs = runs_of(["velocity.kmeans.random_state=1,2", "velocity.som.random_state=3"])
    assert runs[1].name == "default+kmeans.random_state=2+som.random_state=3"


def test_names_that_collide_after_sanitising_get_a_hash():
    runs = runs_of(["velocity.tag='a b','a_b'"])
    names = [r.name for r in runs]
    assert len(set(names)) == 2
    assert all(n.startswith("default+tag=a_b-") and SAFE_NAME.match(n) for n in names)


def test_long_names_are_cut_with_a_hash():
    values = ",".join(f"v{i:03d}" + "x" * 150 for i in range(2))
    names = [r.name for r in runs_of([f"velocity.tag={values}", "velocity.source=a,b"])]
    assert len(set(names)) == 4
    assert all(len(n) <= MAX_NAME for n in names)


@pytest.mark.parametrize("bad", [
    "velocity.kmeans.metric=range(1,",
    "velocity.kmeans metric=dtw,euclidean",
    "velocity.kmeans.n_init=choice()",
    "=3,4",
])
def test_invalid_override_syntax_is_one_clear_error(bad):
    with pytest.raises(InputError) as err:
        parse_sweep([], [bad])
    message = str(err.value)
    assert message.startswith(f"Invalid override {bad!r}")
    assert "key=a,b" in message and message.count("\n") == 0


def test_unbounded_sweeps_and_misplaced_sweeps_are_refused():
    with pytest.raises(InputError, match="cannot be expanded into runs"):
        parse_sweep([], ["velocity.som.sigma=interval(0.1,1)"])
    with pytest.raises(InputError, match="is a sweep: pass it in --config sweep"):
        parse_sweep(["velocity.kmeans.metric=euclidean,dtw"], [])
    with pytest.raises(InputError, match=re.escape("names the key 'velocity.tag' twice")):
        parse_sweep([], ["velocity.tag=a,b", "velocity.tag=c"])
    with pytest.raises(InputError, match="run cannot be swept"):
        parse_sweep([], ["run=a,b"])
    with pytest.raises(InputError, match="expands to no values"):
        parse_sweep([], ["velocity.kmeans.n_init=range(3,1)"])


def test_plan_composes_and_validates_every_run():
    result = plan(["branches=[velocity]"], ["velocity.kmeans.metric=euclidean,dtw"], run="m")
    assert result.sweep_name == "m"
    assert [r.name for r in result.runs] == ["m+metric=euclidean", "m+metric=dtw"]
    cfg = result.configs["m+metric=dtw"]
    assert cfg.run == "m+metric=dtw" and cfg.velocity.kmeans.metric.value == "dtw"
    assert result.summary_runs()[1] == {"name": "m+metric=dtw", "folder": "results/m+metric=dtw",
                                        "overrides": {"velocity.kmeans.metric": "dtw"}}


def test_a_bad_value_in_any_run_stops_the_plan():
    with pytest.raises(InputError, match=re.escape("velocity.kmeans.metric: expected one of")):
        plan([], ["velocity.kmeans.metric=euclidean,cosine"])


def test_without_a_sweep_the_plan_is_the_one_run():
    result = plan(["velocity.kmeans.n_clusters=6"], [], run="k6")
    assert result.sweep_name is None
    assert result.runs == (Run(name="k6", overrides=("velocity.kmeans.n_clusters=6",
                                                     "run=k6")),)
    assert result.configs["k6"].velocity.kmeans.n_clusters == 6


@pytest.mark.parametrize("name", ["stages", "sweeps"])
def test_run_names_of_the_results_folders_own_folders_are_refused(name):
    with pytest.raises(InputError, match=f"run must not be '{name}'"):
        plan([], [], run=name)


@pytest.mark.parametrize("sweep", [[], ["velocity.tag=a,b"]])
def test_run_names_with_commas_are_refused(sweep):
    with pytest.raises(InputError, match="run must not contain ','"):
        plan(["run='a,b'"], sweep)


def test_config_values_become_lists():
    assert as_list(None, "sweep") == []
    assert as_list("a=1,2", "sweep") == ["a=1,2"]
    assert as_list(["a=1", 2], "overrides") == ["a=1", "2"]
    with pytest.raises(InputError, match="--config sweep must be a list"):
        as_list({"a": 1}, "sweep")
