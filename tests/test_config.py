"""Configuration: composition, overrides, schema and value checks."""

import pytest
from omegaconf import OmegaConf

from seiscluster.config import compose, n_init_for, to_container, to_yaml
from seiscluster.errors import InputError


def test_defaults_are_the_seisgo_defaults():
    cfg = compose()
    km, som, prof = cfg.velocity.kmeans, cfg.velocity.som, cfg.velocity.profiles
    assert (km.n_clusters, km.metric.value, km.max_iter_barycenter, km.random_state) == (
        None, "euclidean", 100, 0)
    assert (prof.zrange, prof.spacing, prof.dz) == (None, 1, None)
    assert cfg.velocity.elbow.nrange is None and not cfg.velocity.elbow.smooth
    assert (som.grid_size, som.niteration, som.sigma, som.learning_rate) == (None, 50000, 0.3, 0.1)
    assert (cfg.velocity.source, cfg.velocity.tag) == ("vmodel", "v")
    assert km.n_init is None  # null: 10 restarts, 3 under DTW (config.n_init_for)
    assert (n_init_for("euclidean", None), n_init_for("dtw", None), n_init_for("dtw", 1)) == (
        10, 3, 1)


def test_kselect_and_diagnostics_defaults():
    cfg = compose()
    for section in (cfg.velocity.elbow, cfg.tremor.kscan):
        assert (section.rule.value, section.stability_seeds, section.stability_fraction,
                section.gap_references) == ("stable_criterion", 5, 0.8, 10)
    assert (cfg.velocity.elbow.sample_size, cfg.tremor.kscan.sample_size) == (1000, 5000)
    assert to_container(cfg.diagnostics) == {
        "min_cluster_size": 2, "small_clusters": "warn", "min_silhouette": 0.25,
        "min_stability": 0.9, "min_dec_changed_fraction": 0.01, "max_topographic_error": 0.2}
    cfg = compose(["velocity.elbow.rule=gap", "tremor.kscan.rule=criterion"])
    assert (cfg.velocity.elbow.rule.value, cfg.tremor.kscan.rule.value) == ("gap", "criterion")


def test_seed_drives_every_random_state():
    cfg = compose(["seed=7"])
    assert cfg.velocity.kmeans.random_state == 7
    assert cfg.velocity.som.random_state == 7
    assert cfg.data.velocity.example.seed == 7


def test_overrides_and_groups():
    cfg = compose(["velocity.kmeans.n_clusters=6", "velocity.profiles.dz=2",
                   "velocity.methods=[som]", "run=k6"])
    assert cfg.velocity.kmeans.n_clusters == 6
    assert cfg.velocity.profiles.dz == 2.0
    assert to_container(cfg.velocity.methods) == ["som"]
    assert cfg.run == "k6"


def test_experiment_and_data_presets(shared_data):
    cfg = compose(["experiment=cascadia"])
    assert cfg.data.velocity.path.endswith("Cascadia-ANT+RF-Delph2018.r0.1.nc")
    assert to_container(cfg.velocity.profiles.zrange) == [0.0, 60.0]
    assert cfg.run == "cascadia"


def test_compute_groups():
    cfg = compose()
    assert (cfg.compute.scheduler.value, cfg.compute.address, cfg.compute.n_workers) == (
        "threads", None, None)
    assert compose(["compute=processes"]).compute.scheduler.value == "processes"
    remote = compose(["compute=distributed", "compute.address=tcp://head:8786"]).compute
    assert (remote.scheduler.value, remote.address) == ("distributed", "tcp://head:8786")
    assert remote.profiles_chunk == cfg.compute.profiles_chunk  # the local defaults


def test_resolved_config_is_plain_yaml():
    text = to_yaml(compose())
    assert "${" not in text
    assert OmegaConf.create(text).velocity.kmeans.random_state == 0


def test_markers_and_phases_are_accepted():
    cfg = compose(["experiment=cascadia",
                   "tremor.plot.events=[{time: '2021-03-13T02:00Z', end: '2021-03-14', "
                   "label: phase 1}]"])
    markers = to_container(cfg.velocity.plot.markers)
    assert {"lon": -122.18, "lat": 46.2, "label": "St. Helens", "kind": "volcano"} in markers
    assert to_container(cfg.tremor.plot.events)[0]["end"] == "2021-03-14"
    assert to_container(compose().velocity.plot.markers) == []


def test_config_is_read_only():
    cfg = compose()
    with pytest.raises(Exception, match="read-only"):
        cfg.velocity.kmeans.n_clusters = 3


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("velocity.kmeans.nclusters=3", "Unknown configuration key 'velocity.kmeans.nclusters'"),
        ("+velocity.kmeans.foo=1", "Unknown configuration key 'velocity.kmeans.foo'"),
        ("velocity.kmeans.n_clusters=abc", "velocity.kmeans.n_clusters"),
        ("velocity.kmeans.metric=cosine", "velocity.kmeans.metric"),
        ("velocity.methods=[kmeans,pca]", "velocity.methods"),
        ("velocity.methods=[]", "velocity.methods"),
        ("velocity.profiles.spacing=0", "velocity.profiles.spacing"),
        ("velocity.profiles.dz=0", "velocity.profiles.dz"),
        ("velocity.profiles.dz=-1", "velocity.profiles.dz"),
        ("velocity.profiles.zrange=[50,10]", "velocity.profiles.zrange"),
        ("velocity.profiles.zrange=[10]", "velocity.profiles.zrange"),
        ("velocity.elbow.nrange=[2,3]", "velocity.elbow.nrange"),
        ("velocity.elbow.nrange=[1,2,3]", "velocity.elbow.nrange"),
        ("velocity.elbow.fallback=guess", "velocity.elbow.fallback"),
        ("velocity.kmeans.n_clusters=0", "velocity.kmeans.n_clusters"),
        ("velocity.som.grid_size=[3]", "velocity.som.grid_size"),
        ("velocity.som.sigma=0", "velocity.som.sigma"),
        ("data.velocity.path=/no/such/model.nc", "data.velocity.path"),
        ("data=nosuchpreset", "data/nosuchpreset"),
        ("velocity.kmeans.n_clusters==", "Invalid configuration override"),
        ("run=a/b", "run: expected a folder name"),
        ("compute=distributed", "compute.address: expected the dask scheduler"),
        ("compute=nosuchgroup", "compute/nosuchgroup"),
        ("compute.scheduler=gpu", "compute.scheduler"),
        ("compute.address=tcp://head:8786", "compute.address"),
        ("compute.n_workers=0", "compute.n_workers"),
        ("compute.profiles_chunk=0", "compute.profiles_chunk"),
        ("compute.spectrogram_block_days=-1", "compute.spectrogram_block_days"),
        ("velocity.plot.markers=[{lon: 200, lat: 95}]",
         "velocity.plot.markers[0].lat: expected degrees"),
        ("velocity.plot.markers=[{lon: 0, lat: 0, kind: vent}]",
         "velocity.plot.markers[0].kind: expected one of volcano, station, place, got 'vent'."),
        ("velocity.plot.markers=[{lat: 0}]",
         "velocity.plot.markers[0].lon: expected degrees in [-180, 360], got nothing."),
        ("tremor.plot.events=[{label: x}]",
         "tremor.plot.events[0].time: expected an ISO 8601 time (UTC if no offset), got nothing."),
        ("tremor.plot.events=[{time: soon}]",
         "tremor.plot.events[0].time: expected an ISO 8601 time"),
        ("tremor.plot.events=[{time: '2021-03-13T02:00', end: '2021-03-13T01:00'}]",
         "tremor.plot.events[0].end: expected a time after its time (2021-03-13T02:00)"),
        *((f"{p}.rule=best", f"{p}.rule") for p in ("velocity.elbow", "tremor.kscan")),
        *((f"{p}.{key}={bad}", f"{p}.{key}") for p in ("velocity.elbow", "tremor.kscan")
          for key, bad in (("stability_seeds", 1), ("stability_seeds", 2.5),
                           ("stability_fraction", 0), ("stability_fraction", 1.5),
                           ("sample_size", 1), ("gap_references", 0))),
        ("diagnostics.min_cluster_size=0", "diagnostics.min_cluster_size"),
        ("diagnostics.min_silhouette=2", "diagnostics.min_silhouette"),
        ("diagnostics.min_stability=-1.5", "diagnostics.min_stability"),
        ("diagnostics.min_stability=.nan", "diagnostics.min_stability"),
        ("diagnostics.min_dec_changed_fraction=-0.1", "diagnostics.min_dec_changed_fraction"),
        ("diagnostics.max_topographic_error=1.5", "diagnostics.max_topographic_error"),
        ("+diagnostics.max_te=1", "Unknown configuration key 'diagnostics.max_te'"),
        ("data.waveforms.example.days=0", "data.waveforms.example.days"),
        ("data.waveforms.example.sampling_rate=25", "data.waveforms.example.sampling_rate"),
        ("data.waveforms.example.starttime=soon", "data.waveforms.example.starttime"),
        ("data.waveforms.example.episode_hours=[5,2]", "data.waveforms.example.episode_hours"),
        ("data.waveforms.example.episode_hours=[0.1,2]",
         "data.waveforms.example.episode_hours"),
        ("data.waveforms.example.transition_minutes=-1",
         "data.waveforms.example.transition_minutes"),
        ("data.waveforms.example.transition_minutes=600",
         "data.waveforms.example.transition_minutes"),
        ("data.waveforms.example.harmonic_amplitude=-1",
         "data.waveforms.example.harmonic_amplitude"),
        ("data.waveforms.example.spasmodic_amplitude=-1",
         "data.waveforms.example.spasmodic_amplitude"),
        ("data.waveforms.example.swarm_rate=[40,10]", "data.waveforms.example.swarm_rate"),
        ("data.waveforms.example.swarm_amplitude=0", "data.waveforms.example.swarm_amplitude"),
        ("data.waveforms.example.swarm_max_amplitude=1",
         "data.waveforms.example.swarm_max_amplitude"),
        ("data.waveforms.example.swarm_coda_seconds=[1]",
         "data.waveforms.example.swarm_coda_seconds"),
        ("data.waveforms.example.cultural_amplitude=-0.5",
         "data.waveforms.example.cultural_amplitude"),
        ("data.waveforms.example.microseism_amplitude=-1",
         "data.waveforms.example.microseism_amplitude"),
        ("data.waveforms.example.teleseisms=-1", "data.waveforms.example.teleseisms"),
        ("data.waveforms.example.gap_fractions=[0.9]", "data.waveforms.example.gap_fractions"),
        ("tremor.spectrogram.pooling=median", "tremor.spectrogram.pooling"),
        ("tremor.spectrogram.pooling_percentile=101", "tremor.spectrogram.pooling_percentile"),
        ("tremor.features.frame_seconds=0", "tremor.features.frame_seconds"),
        ("tremor.features.bands=[[2,1]]", "tremor.features.bands"),
        ("tremor.features.bands=[]", "tremor.features.bands"),
        ("tremor.features.percentiles=[120]", "tremor.features.percentiles"),
        ("tremor.features.sets=[level,shape]", "tremor.features.sets"),
        ("tremor.features.sets=[level,level]", "tremor.features.sets"),
        ("tremor.features.scaling=minmax", "tremor.features.scaling"),
        ("tremor.primary_labels=som", "tremor.primary_labels"),
    ],
)
def test_bad_configuration_names_the_key(override, fragment):
    with pytest.raises(InputError) as err:
        compose([override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_known_window_names_are_scipy_windows():
    """The window names accepted without importing scipy.signal are scipy's."""
    from scipy.signal import get_window

    from seiscluster.config import KNOWN_WINDOWS, _is_window

    for name in KNOWN_WINDOWS:
        assert get_window(name, 8).shape == (8,)
    assert _is_window("kaiser") is False  # needs a parameter: asked of scipy, refused
    assert _is_window("bogus") is False
