"""Tests of seiscluster.velocity.io: readers, normalisation, checks and writer."""

from __future__ import annotations

import gzip
import re

import dask.array as da
import netCDF4
import numpy as np
import pytest
import xarray as xr

from seiscluster.errors import InputError
from seiscluster.velocity.io import DIMS, open_model, validate_model, write_model


def small_model(name: str = "vs") -> xr.Dataset:
    """A 4 x 3 x 5 model with distinct values, a NaN and irregular coordinates."""
    depth = np.array([0.0, 2.0, 5.0, 10.0])
    lat = np.array([40.0, 40.5, 41.25])
    lon = np.array([-124.0, -123.5, -123.0, -122.0, -121.75])
    values = np.round(3.0 + np.arange(60, dtype=np.float64).reshape(4, 3, 5) / 100.0, 2)
    values[1, 2, 3] = np.nan
    return xr.Dataset(
        {name: (DIMS, values, {"units": "km/s", "long_name": "shear velocity"})},
        coords={"depth": depth, "latitude": lat, "longitude": lon},
        attrs={"title": "small", "velocity_variable": name, "source_file": "memory"},
    )


def write_text(ds: xr.Dataset, path, header: str = "", drop_nan: bool = True) -> None:
    name = ds.attrs["velocity_variable"]
    table = ds[name].to_dataframe().reset_index()[["longitude", "latitude", "depth", name]]
    if drop_nan:
        table = table.dropna()
    body = header + table.to_string(header=False, index=False) + "\n"
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as handle:
        handle.write(body)


def write_npz(ds: xr.Dataset, path, **extra) -> None:
    np.savez(path, lat=ds.latitude.values, lon=ds.longitude.values, dep=ds.depth.values,
             vmodel=ds.vs.values, **extra)


def assert_same_model(got: xr.Dataset, want: xr.Dataset, name: str = "vs") -> None:
    assert got[got.attrs["velocity_variable"]].dims == DIMS
    for dim in DIMS:
        assert got[dim].dtype == np.float64
        np.testing.assert_array_equal(got[dim].values, want[dim].values)
    np.testing.assert_array_equal(got[got.attrs["velocity_variable"]].values, want[name].values)


# ----------------------------------------------------------------------------- round trips


def test_netcdf_round_trip_is_lazy_and_cf(tmp_path):
    ds = small_model()
    path = tmp_path / "model.nc"
    write_model(ds, path)
    got = open_model(path)
    assert isinstance(got.vs.data, da.Array)
    assert_same_model(got, ds)
    assert got.attrs["velocity_variable"] == "vs"
    assert got.attrs["source_file"] == str(path)
    assert got.attrs["title"] == "small"
    assert got.vs.attrs["units"] == "km/s"
    with netCDF4.Dataset(path) as nc:
        assert nc["depth"].units == "km" and nc["depth"].positive == "down"
        assert nc["latitude"].units == "degrees_north"
        assert nc["latitude"].standard_name == "latitude"
        assert nc["longitude"].units == "degrees_east"
        assert nc["longitude"].standard_name == "longitude"
        assert np.isnan(nc["vs"]._FillValue)
        assert "_FillValue" not in nc["depth"].ncattrs()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nc"]


def test_text_round_trip_with_gzip_comments_and_header(tmp_path):
    ds = small_model()
    plain, gz = tmp_path / "model.txt", tmp_path / "model.xyz.gz"
    write_text(ds, plain)
    write_text(ds, gz, header="# lon lat depth vs\n# from a test\nlon lat depth vs\n")
    assert_same_model(open_model(plain), ds)
    got = open_model(gz)
    assert_same_model(got, ds)
    assert got.attrs["velocity_variable"] == "vs"
    assert open_model(plain).attrs["velocity_variable"] == "v"
    assert open_model(plain, variable="vsv").attrs["velocity_variable"] == "vsv"


def test_csv_text_table(tmp_path):
    ds = small_model()
    table = ds.vs.to_dataframe().reset_index()[["longitude", "latitude", "depth", "vs"]]
    path = tmp_path / "model.csv"
    table.dropna().to_csv(path, index=False)
    assert_same_model(open_model(path), ds)


def test_npz_round_trip(tmp_path):
    ds = small_model()
    path = tmp_path / "model.npz"
    write_npz(ds, path)
    got = open_model(path)
    assert_same_model(got, ds)
    assert got.attrs["velocity_variable"] == "vmodel"


def test_npz_variable_choice_and_shape_errors(tmp_path):
    ds = small_model()
    path = tmp_path / "two.npz"
    write_npz(ds, path, vp=ds.vs.values * 1.7)
    with pytest.raises(InputError, match=r"2 3-D arrays.*data\.velocity\.variable"):
        open_model(path)
    np.testing.assert_allclose(open_model(path, variable="vp").vp.values, ds.vs.values * 1.7)
    bad = tmp_path / "bad.npz"
    np.savez(bad, lat=ds.latitude.values, longitude=ds.longitude.values, depth=ds.depth.values,
             vmodel=ds.vs.values[:, :2, :])
    with pytest.raises(InputError, match=r"2 values along axis 1 \(latitude\).*has 3"):
        open_model(bad)
    nolat = tmp_path / "nolat.npz"
    np.savez(nolat, lon=ds.longitude.values, dep=ds.depth.values, vmodel=ds.vs.values)
    with pytest.raises(InputError, match=r"nolat\.npz has no latitude array"):
        open_model(nolat)


# ----------------------------------------------------------------------------- netCDF details


def raw_netcdf(path, values, lat, lon, depth, names=("depth", "lat", "lon"),
               var="vs", var_attrs=None, depth_units="km", fmt="NETCDF4", extra=None):
    """Write a netCDF file directly with netCDF4 (so fill values are stored raw)."""
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        for name, coord in zip(names, (depth, lat, lon), strict=True):
            nc.createDimension(name, coord.size)
            nc.createVariable(name, "f8", (name,))[:] = coord
        nc[names[0]].units = depth_units
        attrs = dict(var_attrs or {})
        fill = attrs.pop("_FillValue", None)
        v = nc.createVariable(var, "f4", names, fill_value=fill)
        v.set_auto_mask(False)
        v.setncatts(attrs)
        v[:] = values
        for name, (dims, data) in (extra or {}).items():
            nc.createVariable(name, "f4", dims)[:] = data


def test_descending_latitude_aliases_and_fill_values(tmp_path):
    ds = small_model()
    values = ds.vs.values.astype(np.float32)
    values[np.isnan(values)] = 99999.0
    values[0, 0, 0] = -999.0
    path = tmp_path / "emc.nc"
    raw_netcdf(path, values[:, ::-1, :], ds.latitude.values[::-1], ds.longitude.values,
               ds.depth.values, var_attrs={"_FillValue": np.float32(99999.0),
                                           "missing_value": np.float32(-999.0)},
               fmt="NETCDF3_CLASSIC")
    with pytest.warns(Warning, match="multiple fill values"):
        got = open_model(path)
    assert list(got.dims) == list(DIMS)
    np.testing.assert_array_equal(got.latitude.values, ds.latitude.values)
    want = ds.vs.values.astype(np.float32)
    want[0, 0, 0] = np.nan
    np.testing.assert_array_equal(got.vs.values, want)
    assert np.isnan(got.vs.values[1, 2, 3])


def test_transposed_dims_with_aliases(tmp_path):
    ds = small_model()
    path = tmp_path / "t.nc"
    xr.Dataset({"vs": (("long", "lat", "dep"), ds.vs.values.transpose(2, 1, 0))},
               coords={"long": ds.longitude.values, "lat": ds.latitude.values,
                       "dep": ds.depth.values}).to_netcdf(path)
    assert_same_model(open_model(path), ds)


def test_metres_depth_converted_to_km(tmp_path):
    ds = small_model()
    path = tmp_path / "m.nc"
    raw_netcdf(path, ds.vs.values, ds.latitude.values, ds.longitude.values,
               ds.depth.values * 1000.0, depth_units="metres")
    got = open_model(path)
    np.testing.assert_allclose(got.depth.values, ds.depth.values)
    assert got.depth.attrs["units"] == "km"
    assert "metres" in got.depth.attrs["comment"]


def test_a_lone_variable_must_look_like_a_velocity_unless_named(tmp_path):
    """A netCDF's only 3-D variable is taken as the velocity only by its name or its units;
    data.velocity.variable takes any; text and npz layouts are velocities by contract."""
    ds = small_model()
    xr.Dataset({"temperature": (DIMS, ds.vs.values, {"units": "K"})},
               coords=ds.coords).to_netcdf(tmp_path / "t.nc")
    with pytest.raises(InputError, match=r"t\.nc has no variable named or measured as a "
                                         r"velocity.*temperature \(depth, latitude, longitude; "
                                         r"units 'K'\): set data\.velocity\.variable"):
        open_model(tmp_path / "t.nc")
    assert open_model(tmp_path / "t.nc", variable="temperature").attrs[
        "velocity_variable"] == "temperature"
    xr.Dataset({"beta": (DIMS, ds.vs.values, {"units": "km/s"})},
               coords=ds.coords).to_netcdf(tmp_path / "beta.nc")
    assert open_model(tmp_path / "beta.nc").attrs["velocity_variable"] == "beta"
    write_text(ds, tmp_path / "m.txt", header="lon lat depth value\n")
    assert open_model(tmp_path / "m.txt").attrs["velocity_variable"] == "value"
    write_npz(ds, tmp_path / "m.npz")
    assert open_model(tmp_path / "m.npz").attrs["velocity_variable"] == "vmodel"


def test_variable_detection_and_explicit_choice(tmp_path):
    ds = small_model()
    path = tmp_path / "many.nc"
    other = ds.vs.values * 2.0
    multi = ds.assign(
        vp=(DIMS, other, {"units": "km/s"}),
        quality=(DIMS, other * 0, {"units": "1"}),
        topo=(("latitude", "longitude"), other[0]),
    )
    multi.to_netcdf(path)
    with pytest.raises(InputError, match=r"several candidate.*'vs'.*'vp'.*data\.velocity\."
                                         r"variable"):
        open_model(path)
    got = open_model(path, variable="vp")
    assert list(got.data_vars) == ["vp"]
    np.testing.assert_array_equal(got.vp.values, other)
    # a velocity name wins over unknown names; velocity units break a tie among unknown names
    ds.assign(quality=(DIMS, other, {"units": "1"})).to_netcdf(tmp_path / "named.nc")
    assert open_model(tmp_path / "named.nc").attrs["velocity_variable"] == "vs"
    xr.Dataset({"a": (DIMS, other, {"units": "1"}), "b": (DIMS, other, {"units": "km s-1"})},
               coords=ds.coords).to_netcdf(tmp_path / "units.nc")
    assert open_model(tmp_path / "units.nc").attrs["velocity_variable"] == "b"
    with pytest.raises(InputError, match=r"no variable 'vsh'.*data\.velocity\.variable.*"
                                         r"'quality', 'topo', 'vp', 'vs'"):
        open_model(path, variable="vsh")
    with pytest.raises(InputError, match=r"'topo'.*dimensions"):
        open_model(path, variable="topo")


# ----------------------------------------------------------------------------- bad input


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nc does not exist.*data\.velocity\.path"):
        open_model(tmp_path / "nope.nc")
    odd = tmp_path / "model.grd"
    odd.write_text("1 2 3 4\n")
    with pytest.raises(InputError, match=r"model\.grd.*data\.velocity\.format"):
        open_model(odd)
    with pytest.raises(InputError, match=r"data\.velocity\.format: expected one of auto, netcdf"):
        open_model(odd, fmt="grib")
    assert open_model(odd, fmt="text").v.shape == (1, 1, 1)


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [("bad.nc", b"this is not netcdf", "netCDF"),
     ("bad.npz", b"PK\x03\x04 truncated zip", "npz"),
     ("bad.txt.gz", b"\x1f\x8b\x08 broken gzip", "text-table"),
     ("bad.dat", b"1 2 3 x\n", "text-table")],
)
def test_unreadable_files(tmp_path, name, content, what):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"{re.escape(name)} is not a readable {what}"):
        open_model(path)


def test_bad_text_tables(tmp_path):
    ds = small_model()
    path = tmp_path / "dup.txt"
    write_text(ds, path)
    with open(path, "a") as handle:
        handle.write("-123.5 40.5 2.0 3.3\n")
    with pytest.raises(InputError, match=r"dup\.txt lists the node lon=-123\.5, lat=40\.5, "
                                         r"depth=2 more than once"):
        open_model(path)
    five = tmp_path / "five.txt"
    five.write_text("1 2 3 4 5\n")
    with pytest.raises(InputError, match=r"five\.txt has 5 columns; expected 4"):
        open_model(five)


def test_no_3d_variable_and_duplicates_and_non_finite(tmp_path):
    ds = small_model()
    flat = tmp_path / "flat.nc"
    xr.Dataset({"vs": (("latitude", "longitude"), ds.vs.values[0])},
               coords={"latitude": ds.latitude.values, "longitude": ds.longitude.values}
               ).to_netcdf(flat)
    with pytest.raises(InputError, match=r"flat\.nc has no 3-D velocity variable.*"
                                         r"vs\('latitude', 'longitude'\)"):
        open_model(flat)
    dup = tmp_path / "dup.nc"
    lon = ds.longitude.values.copy()
    lon[3] = lon[1]
    raw_netcdf(dup, ds.vs.values, ds.latitude.values, lon, ds.depth.values)
    with pytest.raises(InputError, match=r"longitude coordinate of .*dup\.nc has duplicated "
                                         r"values \(e\.g\. -123\.5\)"):
        open_model(dup)
    inf = tmp_path / "inf.nc"
    depth = ds.depth.values.copy()
    depth[-1] = np.inf
    raw_netcdf(inf, ds.vs.values, ds.latitude.values, ds.longitude.values, depth)
    with pytest.raises(InputError, match=r"depth coordinate of .*inf\.nc has non-finite"):
        open_model(inf)


def test_all_nan_model(tmp_path):
    ds = small_model()
    ds["vs"][:] = np.nan
    path = tmp_path / "empty.nc"
    ds.to_netcdf(path)
    with pytest.raises(InputError, match=r"'vs' of .*empty\.nc is NaN everywhere"):
        open_model(path)


def test_validate_model_contract():
    ds = small_model()
    validate_model(ds)
    with pytest.raises(InputError, match=r"memory has no velocity variable 'vp'"):
        validate_model(ds.assign_attrs(velocity_variable="vp"))
    with pytest.raises(InputError, match=r"dimensions \('latitude', 'depth', 'longitude'\)"):
        validate_model(ds.transpose("latitude", "depth", "longitude"))
    with pytest.raises(InputError, match=r"latitude coordinate of memory is not strictly"):
        validate_model(ds.isel(latitude=[2, 1, 0]))


def test_write_model_is_atomic(tmp_path, monkeypatch):
    ds = small_model()
    path = tmp_path / "out.nc"
    write_model(ds, path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_model(ds.assign(vs=ds.vs * 2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]
    assert "_FillValue" not in ds.depth.attrs and ds.depth.attrs == {}


def test_write_model_drops_source_fill_encoding(tmp_path):
    ds = small_model()
    src = tmp_path / "src.nc"
    values = ds.vs.values.astype(np.float32)
    values[np.isnan(values)] = 99999.0
    raw_netcdf(src, values, ds.latitude.values, ds.longitude.values, ds.depth.values,
               var_attrs={"_FillValue": np.float32(99999.0)})
    copy = tmp_path / "copy.nc"
    write_model(open_model(src), copy)
    with netCDF4.Dataset(copy) as nc:
        assert np.isnan(nc["vs"]._FillValue)
    np.testing.assert_array_equal(open_model(copy).vs.values, ds.vs.values.astype(np.float32))


# ----------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_cascadia_netcdf_and_text_agree(shared_data):
    folder = shared_data / "velocity"
    nc = open_model(folder / "Cascadia-ANT+RF-Delph2018.r0.1.nc")
    assert nc.attrs["velocity_variable"] == "vs"
    assert dict(nc.vs.sizes) == {"depth": 84, "latitude": 46, "longitude": 25}
    assert isinstance(nc.vs.data, da.Array)
    values = nc.vs.values
    assert np.isnan(values).mean() == pytest.approx(0.179, abs=0.001)
    assert np.nanmin(values) >= 1.0 and np.nanmax(values) <= 5.9
    assert nc.depth.values[0] == -3.0 and nc.depth.values[-1] == 80.0
    assert nc.attrs["reference_pid"] == "doi:10.1029/2018gl079518"
    text = open_model(folder / "Cascadia_ANT+RF_Delph2018.txt.gz", variable="vs")
    for dim in DIMS:
        np.testing.assert_array_equal(text[dim].values, nc[dim].values)
    # the table lists exactly the finite nodes of the netCDF, with the same values
    np.testing.assert_array_equal(np.isnan(text.vs.values), np.isnan(values))
    np.testing.assert_array_equal(text.vs.values, values)


@pytest.mark.shared_data
def test_global_model_variable_v(shared_data):
    ds = open_model(shared_data / "velocity" / "S362ANI+M_vs.nc")
    assert ds.attrs["velocity_variable"] == "v"
    assert dict(ds.v.sizes) == {"depth": 25, "latitude": 91, "longitude": 181}
    assert ds.v.attrs["units"] == "kmps"
    values = ds.v.values
    assert np.nanmax(values) < 100  # _FillValue 99999 would be masked (the file has none)
    assert np.isfinite(values).all()
    assert np.nanmin(values) > 4.0 and np.nanmax(values) < 7.5
    assert ds.latitude.values[0] == -90.0 and ds.depth.values[-1] == 2890.0


def write_geocsv(ds: xr.Dataset, path, delimiter: str = "|", extra: str = "",
                 fill: float = 99999.0) -> None:
    """The model as IRIS EMC writes GeoCSV (netCDF_2_GeoCSV_3D.py): header, then rows."""
    table = ds.to_dataframe().reset_index()[["latitude", "longitude", "depth", "vs"]]
    table["vp"] = table["vs"] * 1.75
    table = table.fillna(fill)
    header = [
        "# dataset: GeoCSV2.0", f"# delimiter: {delimiter}",
        "# latitude_column: latitude", "# latitude_units: degrees_north",
        "# longitude_column: longitude", "# longitude_units: degrees_east",
        "# depth_column: depth", "# depth_units: km", "# depth_positive: down",
        "# vs_column: vs", "# vs_units: km.s-1", f"# vs_missing_value: {fill}",
        "# vp_column: vp", "# vp_units: km.s-1", f"# vp__FillValue: {fill}",
    ]
    body = table.to_csv(sep=delimiter, index=False)
    path.write_text("\n".join(header) + "\n" + extra + body)


def test_geocsv_reads_as_the_same_model(tmp_path):
    ds = small_model()
    write_geocsv(ds, tmp_path / "model.csv")
    with pytest.raises(InputError, match=r"several candidate velocity variables \['vs', 'vp'\]"):
        open_model(tmp_path / "model.csv")
    got = open_model(tmp_path / "model.csv", variable="vs")  # format detected by its header
    assert_same_model(got, ds)
    assert got.vs.attrs["units"] == "km.s-1"
    assert np.isnan(got.vs.values[1, 2, 3])  # the missing value became NaN
    vp = open_model(tmp_path / "model.csv", fmt="geocsv", variable="vp")
    np.testing.assert_allclose(vp.vp.values, ds.vs.values * 1.75)
    # a comma-delimited file with depths in metres
    metres = ds.assign_coords(depth=ds.depth * 1000.0)
    write_geocsv(metres, tmp_path / "m.csv", delimiter=",")
    text = (tmp_path / "m.csv").read_text().replace("# depth_units: km", "# depth_units: m")
    (tmp_path / "m.csv").write_text(text)
    np.testing.assert_allclose(open_model(tmp_path / "m.csv", variable="vs").depth.values,
                               ds.depth.values)


def test_geocsv_without_a_velocity_or_on_a_projected_grid_is_refused(tmp_path):
    ds = small_model()
    write_geocsv(ds, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text()
    text = text.replace("km.s-1", "K").replace("|vs|vp", "|temp|heat").replace(
        "# vs_", "# temp_").replace("# vp_", "# heat_")
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(InputError, match=r"has several candidate velocity variables"):
        open_model(tmp_path / "t.csv")
    single = "\n".join(line.rsplit("|", 1)[0] if not line.startswith("#") else line
                       for line in text.splitlines())
    (tmp_path / "t1.csv").write_text(single + "\n")
    with pytest.raises(InputError, match=r"no variable named or measured as a velocity.*"
                                         r"temp \(depth, latitude, longitude; units 'K'\)"):
        open_model(tmp_path / "t1.csv")
    write_geocsv(ds, tmp_path / "p.csv", extra="")
    projected = (tmp_path / "p.csv").read_text().replace(
        "# delimiter: |", "# delimiter: |\n# global_grid_ref: projected\n# x_column: x")
    (tmp_path / "p.csv").write_text(projected)
    with pytest.raises(InputError, match=r"p\.csv is on a projected grid"):
        open_model(tmp_path / "p.csv")


def test_netcdf_on_a_projected_grid_is_refused(tmp_path):
    """IRIS EMC's projected models: 1-D x, y (km) with 2-D latitude(y, x), longitude(y, x)."""
    ds = small_model()
    x, y = np.arange(5.0), np.arange(3.0)
    lon2, lat2 = np.meshgrid(ds.longitude.values, ds.latitude.values)
    xr.Dataset({"vs": (("depth", "y", "x"), ds.vs.values, {"units": "km/s"})},
               coords={"depth": ds.depth.values, "y": y, "x": x,
                       "latitude": (("y", "x"), lat2), "longitude": (("y", "x"), lon2)},
               ).to_netcdf(tmp_path / "utm.nc")
    with pytest.raises(InputError, match=r"utm\.nc is on a projected grid \(x, y with 2-D "
                                         r"latitude and longitude\)"):
        open_model(tmp_path / "utm.nc")
