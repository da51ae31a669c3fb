"""Bad inputs stop with one sentence, asserted word for word (the table in docs/bad_inputs.md).

Each row writes a real small file (or folder) under tmp_path, runs the function a stage
runs, and compares the message of its InputError with the documented one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime

from seiscluster.config import compose
from seiscluster.errors import InputError
from seiscluster.tremor.waveforms import open_source
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.io import open_model, write_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array

Row = Callable[[Path], tuple[Callable[[], object], str]]
ROWS: dict[str, Row] = {}


def row(func: Row) -> Row:
    ROWS[func.__name__] = func
    return func


def small() -> xr.Dataset:
    """A 4 x 5-node example model, 0..6 km."""
    return make_example_model(n_lat=4, n_lon=5, depth_max=6.0)


def model(path: Path) -> Path:
    """The small model written as netCDF-4."""
    write_model(small(), path)
    return path


def unreadable(path: Path, reason: str) -> str:
    return (f"{path} is not a readable netCDF file ({reason}); check data.velocity.path and "
            "data.velocity.format.")


def cut(path: Path, keep: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


@row
def corrupt_netcdf(tmp: Path):
    path = tmp / "model.nc"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    return lambda: open_model(path), unreadable(
        path, "neither netCDF-3 nor netCDF-4/HDF5 data: the file is damaged or another format")


@row
def truncated_netcdf4(tmp: Path):
    path = model(tmp / "model.nc")
    cut(path, path.stat().st_size // 2)
    return lambda: open_model(path), unreadable(
        path, "its netCDF-4/HDF5 data are truncated or damaged")


@row
def truncated_netcdf3(tmp: Path):
    path = tmp / "model.nc"
    small().to_netcdf(path, format="NETCDF3_CLASSIC")
    cut(path, -100)  # the netCDF library would read the missing tail as zeros
    return lambda: open_model(path), unreadable(
        path, "truncated or damaged: its netCDF-3 header describes more data than its "
        f"{path.stat().st_size} bytes hold")


@row
def wrong_variable_name(tmp: Path):
    path = model(tmp / "model.nc")
    return lambda: open_model(path, variable="vp"), (
        f"{path} has no variable 'vp' (data.velocity.variable); its variables are "
        "['province', 'vs'].")


@row
def no_velocity_variable(tmp: Path):
    path = tmp / "model.nc"
    ds = small().rename(vs="temperature")
    ds["temperature"].attrs["units"] = "K"
    ds.to_netcdf(path)
    return lambda: open_model(path), (
        f"{path} has no variable named or measured as a velocity (a name such as vs, vp or v, "
        "or units such as km/s or m/s); its variables are province (latitude, longitude; no "
        "units), temperature (depth, latitude, longitude; units 'K'): set "
        "data.velocity.variable to cluster one of them all the same.")


@row
def depth_in_metres_without_units(tmp: Path):
    path = tmp / "model.npz"
    ds = small()
    np.savez(path, lat=ds.latitude.values, lon=ds.longitude.values,
             dep=ds.depth.values * 1000.0 + 1000.0, vs=ds.vs.values)
    return lambda: open_model(path), (
        f"The depths of {path} reach 7000, deeper than the Earth's radius (6371 km), so they "
        "look like metres: give depths in km, or units 'm' on the depth coordinate of a netCDF "
        "file to have them converted.")


@row
def longitudes_neither_180_nor_360(tmp: Path):
    path = tmp / "model.nc"
    write_model(small().assign_coords(longitude=np.linspace(-10.0, 190.0, 5)), path)
    return lambda: open_model(path), (
        f"The longitudes of {path} span -10..190 degrees; expected -180..180 or 0..360 "
        "(degrees east).")


@row
def truncated_miniseed(tmp: Path):
    path = tmp / "XX.AAA..HHZ.mseed"
    data = np.random.default_rng(0).integers(-1000, 1000, 20_000).astype(np.int32)
    Stream([Trace(data, header={"network": "XX", "station": "AAA", "channel": "HHZ",
                                "sampling_rate": 20.0,
                                "starttime": UTCDateTime("2021-03-12")})]).write(
        str(path), format="MSEED", reclen=512)
    cut(path, 20 * 512 + 100)
    return lambda: open_source({"source": "files", "files": [str(path)]}), (
        f"data.waveforms.files: {path} ends inside a miniSEED record (only 100 bytes of it "
        "are there): the file is truncated; copy it again or leave it out.")


@row
def empty_sds_archive(tmp: Path):
    root = tmp / "sds"
    (root / "2021").mkdir(parents=True)
    return lambda: open_source({"source": "sds", "sds_root": str(root),
                                "starttime": "2021-03-12", "endtime": "2021-03-13"}), (
        f"data.waveforms.sds_root: the archive {root} holds no waveform files (expected the "
        "SDS layout YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY).")


@row
def config_key_typo(tmp: Path):
    return lambda: compose(["velocity.kmeans.n_cluster=3"]), (
        "Unknown configuration key 'velocity.kmeans.n_cluster' in the overrides: check its "
        "spelling against conf/ (new keys are not accepted).")


@row
def dtw_constraint_typo(tmp: Path):
    return lambda: compose(["velocity.kmeans.metric=dtw",
                            "velocity.kmeans.metric_params.global_constraint=sakoe"]), (
        "velocity.kmeans.metric_params.global_constraint: expected one of sakoe_chiba, "
        "itakura, auto or null, got 'sakoe'.")


def composed(override: str, message: str) -> Row:
    """A row whose bad input is one configuration override."""
    return lambda tmp: (lambda: compose([override]), message)


ROWS |= {
    "value_out_of_range": composed("tremor.dec.lr=-1",
                                   "tremor.dec.lr: expected a number > 0, got -1.0."),
    "keys_that_contradict": composed(
        "tremor.kscan.k_min=50",
        "tremor.kscan.k_max: expected an integer >= tremor.kscan.k_min (50), got 15."),
    "value_of_the_wrong_type": composed(
        "tremor.pretrain.batch_size=16.5",
        "tremor.pretrain.batch_size: expected an integer, got 16.5."),
    "unknown_option": composed(
        "tremor.spectrogram.pooling=median",
        "tremor.spectrogram.pooling: expected one of mean, max, percentile, got 'median'."),
    "response_removal_without_response": composed(
        "tremor.preprocess.remove_response=true",
        "tremor.preprocess.remove_response: expected false when data.waveforms.stationxml "
        "(the instrument response) is null, got True."),
    "consensus_of_a_method_not_run": composed(
        "velocity.consensus.methods=[gmm]",
        "velocity.consensus.methods: expected methods that velocity.methods runs (kmeans, "
        "som), got 'gmm'."),
}


@row
def sweep_syntax(tmp: Path):
    from seiscluster.sweep import parse_sweep

    return lambda: parse_sweep([], ["velocity.kmeans.n_init=range(1,"]), (
        "Invalid override 'velocity.kmeans.n_init=range(1,' (no viable alternative at input "
        "'range(1,'): expected Hydra override syntax such as key=a,b or key=range(1,4) or "
        "key=choice(a,b).")


@row
def trained_run_missing(tmp: Path):
    from seiscluster.tremor.apply import load_trained

    return lambda: load_trained(tmp / "results" / "old"), (
        f"apply.run: {tmp / 'results' / 'old'} does not exist (the folder of a finished run, "
        "e.g. results/default, was expected).")


@row
def compared_run_without_clusters(tmp: Path):
    from seiscluster.velocity.apply import run_clusters

    (tmp / "results" / "tremor_only").mkdir(parents=True)
    return lambda: run_clusters(str(tmp / "results" / "tremor_only"), "kmeans"), (
        f"velocity.compare.run: {tmp / 'results' / 'tremor_only'} has no "
        "velocity/kmeans/clusters.nc; expected the folder of a finished run whose "
        "velocity.methods include kmeans (velocity.compare.method).")


def spectrogram_store(path: Path, bad: tuple[int, int], value: float) -> Path:
    """A valid 6-window, 2-channel spectrogram stack with one non-finite cell."""
    x = np.random.default_rng(0).normal(size=(6, 2, 4, 5)).astype(np.float32)
    x[bad[0], bad[1], 1, 2] = value
    xr.Dataset(
        {"spectrogram": (("window", "channel", "frequency", "time"), x),
         "valid": (("window", "channel"), np.ones((6, 2), bool))},
        coords={"window": pd.date_range("2021-03-12", periods=6, freq="h").to_numpy(),
                "channel": ["XX.AAA..HHZ", "XX.AAA..HHE"], "frequency": np.linspace(1, 4, 4),
                "time": np.arange(5.0)},
    ).to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return path


def non_finite_spectrogram(tmp: Path, mode: str, bad: tuple[int, int], value: float,
                           window: str, channel: str):
    from seiscluster.tremor.deep_stages import _load

    path = spectrogram_store(tmp / "spectrograms.zarr", bad, value)
    return lambda: _load(str(path), mode), (
        f"{path} has NaN or infinite values in 1 spectrogram(s) marked valid, the first in "
        f"window {window} of {channel}; recompute the spectrograms.")


ROWS["inf_in_stacked_spectrograms"] = lambda tmp: non_finite_spectrogram(
    tmp, "stack", (3, 1), np.inf, "2021-03-12T03:00:00", "XX.AAA..HHE")
ROWS["nan_in_separate_spectrograms"] = lambda tmp: non_finite_spectrogram(
    tmp, "separate", (4, 0), np.nan, "2021-03-12T04:00:00", "XX.AAA..HHZ")


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_stops_with_the_documented_sentence(name, tmp_path):
    action, message = ROWS[name](tmp_path)
    with pytest.raises(InputError) as err:
        action()
    assert str(err.value) == message


def test_dec_divergence_names_the_learning_rate_and_keeps_the_last_good_state(tmp_path):
    import torch

    from seiscluster.tremor.autoencoder import ConvAutoencoder, embed
    from seiscluster.tremor.dec import fit_dec, load_dec
    from seiscluster.tremor.kscan import fit_kmeans

    torch.manual_seed(0)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype(np.float32))
    ae = ConvAutoencoder((1, 8, 8), channels=[4], kernels=[[3, 3]], strides=[2], latent_dim=4)
    km = fit_kmeans(embed(ae, x)[0], 3, n_init=2, seed=0)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(InputError) as err:
        fit_dec(ae, x, km.centres, km.labels, checkpoint=ckpt, seed=0,
                dec={"update_interval": 2, "batch_size": 8, "maxiter": 100, "tol": 0.0,
                     "lr": 1e12}, trainer={"accelerator": "cpu"})
    found = re.search(r"at iteration (\d+)\)", str(err.value))
    assert found, str(err.value)
    assert str(err.value) == (
        f"DEC fine-tuning diverged (non-finite loss or assignment at iteration "
        f"{found.group(1)}): lower tremor.dec.lr or check the spectrograms; the last good "
        f"state is kept in {ckpt}.")
    _, state = load_dec(ckpt)  # the kept state is readable and predates the divergence
    assert state["iteration"] < int(found.group(1))
    assert all(torch.isfinite(v).all() for v in state["autoencoder"].values())


# ------------------------------------------------------------- inputs fixed, and said so


def test_depth_in_metres_by_units_is_converted_and_logged(tmp_path, caplog):
    ds = small()
    metres = ds.assign_coords(depth=("depth", ds.depth.values * 1000.0, {"units": "meters"}))
    metres.to_netcdf(tmp_path / "m.nc")
    with caplog.at_level(logging.INFO, logger="seiscluster.velocity.io"):
        got = open_model(tmp_path / "m.nc")
    np.testing.assert_array_equal(got.depth.values, ds.depth.values)
    assert got.depth.attrs["units"] == "km"
    assert f"the depth coordinate of {tmp_path / 'm.nc'} is in metres (units 'meters'): " \
           "converted to km" in caplog.messages


def test_longitudes_0_360_are_normalised_and_cluster_as_minus_180_180(tmp_path, caplog):
    """A model across the Greenwich meridian given as 0..360 (0..20, then 340..360) reads
    as the same model given as -180..180 and gives the same clusters."""
    ds = make_example_model(n_lat=10, n_lon=21, depth_max=20.0)
    west_east = ds.assign_coords(longitude=np.linspace(-20.0, 20.0, 21))
    write_model(west_east, tmp_path / "180.nc")
    as_360 = west_east.assign_coords(longitude=west_east.longitude.values % 360).sortby(
        "longitude")
    write_model(as_360, tmp_path / "360.nc")
    with caplog.at_level(logging.INFO, logger="seiscluster.velocity.io"):
        a = open_model(tmp_path / "360.nc").load()
    b = open_model(tmp_path / "180.nc").load()
    assert f"the longitudes of {tmp_path / '360.nc'} span 0..358 (0..360): converted to " \
           "-180..180 and sorted" in caplog.messages
    xr.testing.assert_equal(a.drop_attrs(), b.drop_attrs())
    pa, pb = extract_profiles(a, spacing=2), extract_profiles(b, spacing=2)
    np.testing.assert_array_equal(pa.longitude.values, pb.longitude.values)
    la = ProfileKMeans(n_clusters=4, random_state=0).fit(profile_array(pa)).labels_
    lb = ProfileKMeans(n_clusters=4, random_state=0).fit(profile_array(pb)).labels_
    np.testing.assert_array_equal(la, lb)
    assert np.unique(la).size == 4


def test_a_360_column_repeating_0_is_dropped(tmp_path):
    ds = make_example_model(n_lat=3, n_lon=5, depth_max=4.0)
    write_model(ds.assign_coords(longitude=[0.0, 90.0, 180.0, 270.0, 360.0]), tmp_path / "g.nc")
    got = open_model(tmp_path / "g.nc")
    np.testing.assert_array_equal(got.longitude.values, [-90.0, 0.0, 90.0, 180.0])
    np.testing.assert_array_equal(got.vs.values[:, :, 1], ds.vs.values[:, :, 0])
