"""Small real products of a run, made by the stage functions (no Snakemake), for the
report tests: the velocity branch in full and the tremor spectrograms with their figures."""

from __future__ import annotations

from pathlib import Path

from seiscluster.config import compose, to_container, to_yaml
from seiscluster.tremor import stages as tremor
from seiscluster.velocity import stages as velocity

OVERRIDES = [
    "run=products",
    "data.velocity.example.n_lat=12",
    "data.velocity.example.n_lon=16",
    "data.velocity.example.depth_step=4",
    "velocity.elbow.nrange=[2,3,4,5,6]",
    "velocity.som.niteration=500",
    "velocity.som.grid_size=[2,2]",
    "velocity.kmeans.n_init=2",
    "data.waveforms.example.days=1",
]


def make_products(folder: Path) -> dict[str, str]:
    """Write a run's products under ``folder``; return the report's named inputs."""
    cfg = compose(OVERRIDES)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(to_yaml(cfg))
    return {"config": str(config), **_velocity(folder / "velocity", cfg),
            **_tremor(folder / "tremor", cfg)}


def _velocity(out: Path, cfg) -> dict[str, str]:
    vel = to_container(cfg.velocity)
    files = {"profiles": str(out / "profiles.nc"), "elbow_choice": str(out / "elbow/choice.json"),
             "elbow_table": str(out / "elbow/elbow.csv"),
             "elbow_figure": str(out / "elbow/elbow.png")}
    velocity.ingest(model=str(out / "model.nc"),
                    example=to_container(cfg.data.velocity.example))
    velocity.profiles(model=str(out / "model.nc"), profiles=files["profiles"], **vel["profiles"])
    velocity.elbow(profiles=files["profiles"], table=files["elbow_table"],
                   choice=files["elbow_choice"], figure=files["elbow_figure"],
                   kmeans=vel["kmeans"], elbow=vel["elbow"])
    for method, fit, section in (("kmeans", velocity.fit_kmeans, {"kmeans": vel["kmeans"],
                                                                  "choice": files["elbow_choice"],
                                                                  "table": files["elbow_table"]}),
                                 ("som", velocity.fit_som, {"som": vel["som"]})):
        folder = out / method
        fit(profiles=files["profiles"], cluster_map=str(folder / "cluster_map.csv"),
            clusters=str(folder / "clusters.nc"), model=str(folder / "model.pkl"),
            seisgo=str(folder / "seisgo"), metrics=str(folder / "metrics.json"),
            source="vmodel", tag="v", **section)
        figures = {"cluster_figure": str(folder / "clusters.png"),
                   "map_figure": str(folder / "cluster_map.png")}
        if method == "som":
            figures["som_figure"] = str(folder / "som_maps.png")
        velocity.figures(profiles=files["profiles"], clusters=str(folder / "clusters.nc"),
                         **figures)
        files |= {f"{method}_metrics": str(folder / "metrics.json")}
        files |= {f"{method}_{key}": path for key, path in figures.items()}
    return files


def _tremor(out: Path, cfg) -> dict[str, str]:
    files = {"spectrograms": str(out / "spectrograms.zarr"),
             "skipped": str(out / "skipped_windows.csv"),
             "figure_overview": str(out / "figures/overview.png"),
             "figure_spectrogram_examples": str(out / "figures/spectrogram_examples.png")}
    waveforms = to_container(cfg.data.waveforms)
    tremor.make_example(waveforms=str(out / "example/waveforms"),
                        truth=str(out / "example/truth.csv"), example=waveforms["example"])
    tremor.spectrograms(spectrograms=files["spectrograms"], skipped=files["skipped"],
                        waveforms=waveforms, preprocess=to_container(cfg.tremor.preprocess),
                        spectrogram=to_container(cfg.tremor.spectrogram),
                        files=[str(out / "example/waveforms")])
    tremor.spectrogram_figures(spectrograms=files["spectrograms"],
                               overview=files["figure_overview"],
                               examples=files["figure_spectrogram_examples"])
    return files
