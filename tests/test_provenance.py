"""Provenance records, NetCDF provenance attributes and the label reproduction check."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster import provenance
from seiscluster.fileio import netcdf_attributes, write_netcdf


def test_package_versions_come_from_the_installed_metadata():
    versions = provenance.package_versions()
    assert versions["numpy"] == np.__version__
    assert versions["xarray"] == xr.__version__
    assert set(provenance.PACKAGES) <= set(versions)
    assert provenance.package_versions(["no-such-distribution-xyz"]) == {
        "no-such-distribution-xyz": None}


def test_checksums_of_files_and_folders(tmp_path):
    data = tmp_path / "a.bin"
    data.write_bytes(b"abc")
    assert provenance.checksum(data) == hashlib.sha256(b"abc").hexdigest()
    folder = tmp_path / "dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub/x").write_bytes(b"1")
    first = provenance.checksum(folder)
    (folder / "sub/x").write_bytes(b"2")
    assert provenance.checksum(folder) != first


def test_only_inputs_from_outside_results_are_checksummed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/stages/s/k").mkdir(parents=True)
    (tmp_path / "results/stages/s/k/p.nc").write_bytes(b"x")
    (tmp_path / "model.nc").write_bytes(b"y")
    (tmp_path / "day1.mseed").write_bytes(b"z")
    sums = provenance.external_inputs({"profiles": "results/stages/s/k/p.nc",
                                       "path": "model.nc", "files": ["day1.mseed"]})
    assert sums == {"day1.mseed": hashlib.sha256(b"z").hexdigest(),
                    "model.nc": hashlib.sha256(b"y").hexdigest()}


def test_stage_record_is_written_with_its_end_time(tmp_path):
    params = {"kmeans": {"random_state": 3, "n_init": 2}, "tag": "v"}
    record = provenance.stage_record(stage="velocity_kmeans", key="0123456789ab",
                                     params=params, inputs={"files": ["a", "b"]}, code="c0de")
    provenance.finish(record, tmp_path / "provenance.json")
    written = json.loads((tmp_path / "provenance.json").read_text())
    assert written["stage"] == "velocity_kmeans" and written["key"] == "0123456789ab"
    assert written["seed"] == 3 and written["config"] == params
    assert written["inputs"] == {"files": ["a", "b"]}
    assert written["start"] <= written["end"] and written["seconds"] >= 0
    assert written["versions"]["numpy"] == np.__version__ and written["host"]


def test_seeds_found_among_the_config_values():
    assert provenance.seeds({"seed": 4, "model": {"latent_dim": 2}}) == 4
    assert provenance.seeds({"example": {"seed": 1}, "som": {"random_state": 1}}) == 1
    assert provenance.seeds({"seed": 1, "example": {"seed": 2}}) == {"seed": 1,
                                                                       "example.seed": 2}
    assert provenance.seeds({"dpi": 120}) is None


def test_netcdf_files_written_in_a_provenance_context_carry_it(tmp_path):
    ds = xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"title": "t",
                                                         "provenance_stage": "own"})
    record = {"stage": "s", "key": "k", "config": {"a": [1, 2]}, "seed": 0, "code": None}
    attrs = provenance.netcdf_attributes(record)
    assert attrs == {"provenance_stage": "s", "provenance_key": "k",
                     "provenance_config": '{"a": [1, 2]}', "provenance_seed": "0"}
    with netcdf_attributes(attrs):
        write_netcdf(ds, tmp_path / "with.nc")
    write_netcdf(ds, tmp_path / "without.nc")
    with xr.open_dataset(tmp_path / "with.nc") as inside, \
            xr.open_dataset(tmp_path / "without.nc") as outside:
        assert inside.attrs["provenance_key"] == "k"
        assert json.loads(inside.attrs["provenance_config"]) == {"a": [1, 2]}
        assert inside.attrs["provenance_stage"] == "own"  # the dataset's own attribute wins
        assert inside.attrs["title"] == "t"
        assert "provenance_key" not in outside.attrs


def test_run_record_gathers_its_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/r").mkdir(parents=True)
    (tmp_path / "results/r/config.yaml").write_text("run: r\nseed: 5\nvelocity: {a: 1}\n")
    records = {}
    for i, stage in enumerate(("s1", "s2")):
        path = tmp_path / f"{stage}.json"
        path.write_text(json.dumps({
            "key": f"k{i}", "code": "c", "start": f"2026-01-0{i + 1}T00:00:00+00:00",
            "end": f"2026-01-0{i + 2}T00:00:00+00:00", "seconds": 1.0, "host": "h",
            "input_checksums": {f"in{i}": "ff"}}))
        records[f"stage_{stage}"] = str(path)
    target = tmp_path / "results/stages/s1/k0/x.csv"
    target.parent.mkdir(parents=True)
    target.write_text("")
    (tmp_path / "results/r/x.csv").symlink_to("../stages/s1/k0/x.csv")
    provenance.record_run(provenance="results/r/provenance.json", config="results/r/config.yaml",
                          overrides=["a=1"], products=["results/r/x.csv"], folder="results/r",
                          **records)
    record = json.loads((tmp_path / "results/r/provenance.json").read_text())
    assert record["run"] == "r" and record["seed"] == 5 and record["overrides"] == ["a=1"]
    assert record["config"]["velocity"] == {"a": 1}
    assert record["start"].startswith("2026-01-01") and record["end"].startswith("2026-01-03")
    assert record["input_checksums"] == {"in0": "ff", "in1": "ff"}
    assert set(record["stages"]) == {"s1", "s2"} and record["stages"]["s2"]["key"] == "k1"
    assert record["products"] == {"x.csv": "../stages/s1/k0/x.csv"}


def _label_folder(root, dec_clusters=(1, 2, 2)):
    (root / "velocity/kmeans").mkdir(parents=True)
    pd.DataFrame({"lat": [1.0, 1.5], "lon": [2.0, 2.25], "cluster": [1, 2]}).to_csv(
        root / "velocity/kmeans/cluster_map.csv", index=False)
    (root / "tremor/dec").mkdir(parents=True)
    pd.DataFrame({"window_start": ["2021-03-12T00:00:00", "2021-03-12T01:00:00",
                                   "2021-03-12T02:00:00"],
                  "cluster": list(dec_clusters), "max_assignment": [0.9, 0.8, 0.7]}).to_csv(
        root / "tremor/dec/labels.csv", index=False)
    (root / "tremor/features").mkdir(parents=True)
    pd.DataFrame({"window_start": ["2021-03-12T00:00:00"], "cluster": [3],
                  "distance": [0.5]}).to_csv(root / "tremor/features/labels.csv", index=False)
    return root


def test_labels_are_collected_and_compared(tmp_path):
    labels = provenance.collect_labels(_label_folder(tmp_path / "a"))
    assert list(labels.columns) == ["product", "item", "cluster"]
    assert labels["product"].tolist() == (["velocity/kmeans"] * 2 + ["tremor/dec"] * 3
                                          + ["tremor/features"])
    assert labels["item"].iloc[1] == "1.500000,2.250000"
    reference = tmp_path / "ref.csv"
    assert provenance.main([str(tmp_path / "a"), str(reference), "--record"]) == 0
    assert provenance.main([str(tmp_path / "a"), str(reference)]) == 0
    _label_folder(tmp_path / "b", dec_clusters=(1, 2, 1))
    assert provenance.main([str(tmp_path / "b"), str(reference)]) == 1
    other = provenance.collect_labels(tmp_path / "b")
    assert provenance.compare_labels(labels, other) == ["tremor/dec: 1 of 3 labels differ"]
    assert provenance.compare_labels(labels, other[other["product"] != "tremor/dec"]) == [
        "tremor/dec: missing"]


@pytest.mark.parametrize("rows", [3, 4])
def test_changed_items_are_reported(tmp_path, rows):
    labels = provenance.collect_labels(_label_folder(tmp_path / "a"))
    other = labels.drop(index=range(rows, 5))  # some DEC rows; the features row stays
    (problem,) = provenance.compare_labels(labels, other)
    assert problem.startswith("tremor/dec:") and "items differ" in problem
