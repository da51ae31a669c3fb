"""Consensus over seeds of the embedding's clustering (tremor.consensus)."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster.tremor.stages import consensus


def embeddings(path, spread, method=None):
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(m, spread, (40, 4)) for m in (0.0, 3.0, 6.0)])
    labels = np.repeat([1, 2, 3], 40)
    windows = pd.date_range("2021-03-12", periods=z.shape[0], freq="h").to_numpy()
    valid = np.ones(z.shape[0], dtype=bool)
    valid[5] = False  # a skipped window: no sample
    ds = xr.Dataset({"embedding": (("window", "latent"), np.where(valid[:, None], z, np.nan)),
                     "kmeans_label": (("window",), np.where(valid, labels, 0)),
                     "valid": (("window",), valid)},
                    coords={"window": windows, "latent": np.arange(4)},
                    attrs={"n_clusters": 3})
    if method:
        ds["cluster_label"] = ds["kmeans_label"]
        ds.attrs["cluster_method"] = method
    ds.to_netcdf(path)
    return labels[valid]


@pytest.mark.parametrize("method", [None, "agglomerative", "gmm"])
def test_separated_windows_always_agree_and_overlapping_ones_less(tmp_path, method):
    out = {name: str(tmp_path / name) for name in ("a.csv", "m.json", "f.png")}
    for spread, whole in ((0.3, True), (1.6, False)):
        labels = embeddings(tmp_path / "e.nc", spread, method)
        consensus(embeddings=str(tmp_path / "e.nc"), agreement=out["a.csv"],
                  metrics=out["m.json"], figure=out["f.png"],
                  consensus={"seeds": 4, "fraction": 0.7}, cluster={}, kscan={"n_init": 2},
                  seed=0)
        table = pd.read_csv(out["a.csv"])
        metrics = json.loads((tmp_path / "m.json").read_text())
        assert len(table) == labels.size and (table["cluster"] == labels).all()
        assert metrics["seeds"] == [1, 2, 3, 4]
        assert metrics["method"] == (method or "kmeans")
        if whole:
            assert (table["agreement"] == 1).all() and metrics["warnings"] == []
        else:
            assert table["agreement"].min() < 1 and metrics["mean_agreement"] < 1
    again = tmp_path / "again.csv"
    consensus(embeddings=str(tmp_path / "e.nc"), agreement=str(again), metrics=out["m.json"],
              figure=out["f.png"], consensus={"seeds": 4, "fraction": 0.7}, cluster={},
              kscan={"n_init": 2}, seed=0)
    pd.testing.assert_frame_equal(pd.read_csv(again), pd.read_csv(out["a.csv"]))
