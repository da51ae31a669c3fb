"""Every key of every configuration group is checked when the configuration is composed.

For each key of the composed configuration (lists are one key) BAD holds a value that must be
refused: compose() stops with one sentence that starts with the full key and says what was
expected. A key added to the schema without a bad value here fails the first test.
"""

from __future__ import annotations

import pytest
from omegaconf import DictConfig

from seiscluster.config import RULES, compose
from seiscluster.errors import InputError

EX = "data.waveforms.example"
#: key -> a bad value, in Hydra's override syntax.
BAD = {
    "run": "a/b",
    "seed": -1,
    "branches": "[velocity,velocity]",
    "data.velocity.path": "/no/such/model.nc",
    "data.velocity.format": "grib",
    "data.velocity.variable": "''",
    "data.velocity.example.n_lat": 1,
    "data.velocity.example.n_lon": 0,
    "data.velocity.example.depth_max": 0,
    "data.velocity.example.depth_step": -1,
    "data.velocity.example.n_provinces": 9,
    "data.velocity.example.noise": -0.1,
    "data.velocity.example.nan_fraction": 1,
    "data.velocity.example.seed": -3,
    "data.waveforms.source": "ftp",
    "data.waveforms.files": "[[a]]",
    "data.waveforms.format": "''",
    "data.waveforms.sds_root": "/no/such/archive",
    "data.waveforms.fdsn_client": "''",
    "data.waveforms.fdsn_cache": "''",
    "data.waveforms.network": "X.Y",
    "data.waveforms.station": "A.B",
    "data.waveforms.location": "0.0",
    "data.waveforms.channel": "H.Z",
    "data.waveforms.starttime": "yesterday",
    "data.waveforms.endtime": "tomorrow",
    "data.waveforms.stationxml": "/no/such/response.xml",
    f"{EX}.days": 0,
    f"{EX}.sampling_rate": 25,
    f"{EX}.starttime": "soon",
    f"{EX}.seed": -1,
    f"{EX}.episode_hours": "[5,2]",
    f"{EX}.transition_minutes": -1,
    f"{EX}.harmonic_amplitude": -1,
    f"{EX}.spasmodic_amplitude": -1,
    f"{EX}.swarm_rate": "[40,10]",
    f"{EX}.swarm_amplitude": 0,
    f"{EX}.swarm_max_amplitude": 1,
    f"{EX}.swarm_coda_seconds": "[1]",
    f"{EX}.cultural_amplitude": -0.5,
    f"{EX}.microseism_amplitude": -1,
    f"{EX}.teleseisms": -1,
    f"{EX}.gap_fractions": "[0.9]",
    f"{EX}.withheld_regimes": "[lava]",
    f"{EX}.withheld_days": -1,
    "apply.run": "''",
    "apply.novelty_quantile": 0,
    "apply.novelty_factor": 0,
    "apply.incremental": "maybe",
    "velocity.methods": "[]",
    "velocity.source": "''",
    "velocity.tag": "[v]",
    "velocity.profiles.zrange": "[50,10]",
    "velocity.profiles.spacing": 0,
    "velocity.profiles.dz": 0,
    "velocity.grid.weights": "area",
    "velocity.grid.weights_lat_span": -1,
    "velocity.kmeans.n_clusters": 0,
    "velocity.kmeans.metric": "cosine",
    "velocity.kmeans.metric_params.global_constraint": "sakoe",
    "velocity.kmeans.metric_params.sakoe_chiba_radius": -1,
    "velocity.kmeans.metric_params.itakura_max_slope": 0.5,
    "velocity.kmeans.metric_params.gamma": 0,
    "velocity.kmeans.max_iter_barycenter": 0,
    "velocity.kmeans.n_init": 0,
    "velocity.kmeans.max_iter": 0,
    "velocity.kmeans.tol": -1,
    "velocity.kmeans.random_state": -1,
    "velocity.kmeans.fit_sample_size": 1,
    "velocity.kmeans.figbase": "a/b",
    "velocity.elbow.nrange": "[1,2,3]",
    "velocity.elbow.smooth": "maybe",
    "velocity.elbow.smooth_n": 0,
    "velocity.elbow.sensitivity": 0,
    "velocity.elbow.fallback": "guess",
    "velocity.elbow.silhouette_sample_size": 1,
    "velocity.elbow.rule": "best",
    "velocity.elbow.stability_seeds": 1,
    "velocity.elbow.stability_fraction": 0,
    "velocity.elbow.sample_size": 1,
    "velocity.elbow.gap_references": 0,
    "velocity.som.grid_size": "[3]",
    "velocity.som.niteration": 0,
    "velocity.som.sigma": 0,
    "velocity.som.learning_rate": -0.1,
    "velocity.som.neighborhood_function": "cone",
    "velocity.som.topology": "toroidal",
    "velocity.som.activation_distance": "hamming",
    "velocity.som.random_state": -1,
    "velocity.som.figbase": "..",
    "velocity.gmm.n_clusters": 0,
    "velocity.gmm.select": "gap",
    "velocity.gmm.covariance_type": "round",
    "velocity.gmm.n_init": 0,
    "velocity.gmm.max_iter": 0,
    "velocity.gmm.tol": 0,
    "velocity.gmm.reg_covar": -1,
    "velocity.gmm.init_params": "kmeans++",
    "velocity.gmm.random_state": -1,
    "velocity.plot.figsize": "[0,3]",
    "velocity.plot.dpi": 0,
    "velocity.plot.markers": "[{lon: 0, lat: 95}]",
    "tremor.preprocess.detrend": "quadratic",
    "tremor.preprocess.taper": 0.7,
    "tremor.preprocess.freqmin": -1,
    "tremor.preprocess.freqmax": 0,
    "tremor.preprocess.resample": 0,
    "tremor.preprocess.decimate": 0,
    "tremor.preprocess.remove_response": "maybe",
    "tremor.preprocess.response_output": "VELOCITY",
    "tremor.preprocess.pre_filt": "[1,3,2,4]",
    "tremor.preprocess.water_level": ".nan",
    "tremor.preprocess.max_gap_fraction": 1,
    "tremor.preprocess.channels": "both",
    "tremor.spectrogram.window_length": 0,
    "tremor.spectrogram.window_step": -1,
    "tremor.spectrogram.origin": "noon",
    "tremor.spectrogram.nperseg": 1,
    "tremor.spectrogram.noverlap": -1,
    "tremor.spectrogram.taper": "bogus",
    "tremor.spectrogram.fmin": -1,
    "tremor.spectrogram.fmax": 0,
    "tremor.spectrogram.n_freq": 0,
    "tremor.spectrogram.n_time": 2.5,
    "tremor.spectrogram.frequency_scale": "mel",
    "tremor.spectrogram.power": "ln",
    "tremor.spectrogram.normalise": "minmax",
    "tremor.spectrogram.pooling": "median",
    "tremor.spectrogram.pooling_percentile": 101,
    "tremor.model.channels": "[]",
    "tremor.model.kernels": "[[3],[3],[3],[3]]",
    "tremor.model.strides": "[2,0,2,2]",
    "tremor.model.latent_dim": 0,
    "tremor.model.activation": "swish",
    "tremor.pretrain.val_fraction": 1,
    "tremor.pretrain.split_seed": -1,
    "tremor.pretrain.batch_size": 0,
    "tremor.pretrain.lr": -1,
    "tremor.pretrain.lr_decay_rate": 0,
    "tremor.pretrain.lr_decay_steps": 0,
    "tremor.pretrain.max_epochs": 0,
    "tremor.pretrain.patience": -1,
    "tremor.kscan.k_min": 1,
    "tremor.kscan.k_max": 1,
    "tremor.kscan.n_init": 0,
    "tremor.kscan.criterion": "elbow",
    "tremor.kscan.n_clusters": 1,
    "tremor.kscan.rule": "best",
    "tremor.kscan.stability_seeds": 1,
    "tremor.kscan.stability_fraction": 1.5,
    "tremor.kscan.sample_size": 1,
    "tremor.kscan.gap_references": 0,
    "tremor.features.frame_seconds": 0,
    "tremor.features.bands": "[[2,1]]",
    "tremor.features.percentiles": "[120]",
    "tremor.features.sets": "[level,level]",
    "tremor.features.scaling": "minmax",
    "tremor.primary_labels": "som",
    "tremor.dec.alpha": 0,
    "tremor.dec.update_interval": 0,
    "tremor.dec.kl_weight": 0,
    "tremor.dec.reconstruction_weight": -1,
    "tremor.dec.lr": -1,
    "tremor.dec.momentum": 1,
    "tremor.dec.batch_size": 0,
    "tremor.dec.maxiter": -1,
    "tremor.dec.tol": -1,
    "tremor.tsne.perplexity": 0,
    "tremor.plot.events": "[{time: soon}]",
    "tremor.plot.dpi": 0,
    "trainer.accelerator": "tpu",
    "trainer.devices": 2,
    "trainer.precision": "8-bit",
    "trainer.deterministic": "maybe",
    "trainer.compile": "maybe",
    "trainer.channels_last": "maybe",
    "trainer.num_threads": 0,
    "compute.scheduler": "gpu",
    "compute.address": "tcp://head:8786",
    "compute.n_workers": 0,
    "compute.profiles_chunk": 0,
    "compute.spectrogram_block_days": -1,
    "diagnostics.min_cluster_size": 0,
    "diagnostics.min_silhouette": 2,
    "diagnostics.min_stability": ".nan",
    "diagnostics.min_dec_changed_fraction": -0.1,
    "diagnostics.max_topographic_error": 1.5,
}


def leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Every key of the config whose value is not a section (a list is one key)."""
    out = []
    for key in node:
        value = node._get_node(key)
        if isinstance(value, DictConfig):
            out += leaf_keys(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def test_every_key_has_a_bad_value():
    keys = leaf_keys(compose())
    assert sorted(set(keys) - set(BAD)) == []
    assert sorted(set(BAD) - set(keys)) == []
    assert sorted(set(RULES) - set(keys)) == []  # no rule for a key that does not exist


@pytest.mark.parametrize("key", list(BAD))
def test_a_bad_value_of_every_key_is_refused_naming_the_key(key):
    with pytest.raises(InputError) as err:
        compose([f"{key}={BAD[key]}"])
    message = str(err.value)
    assert message.startswith(key) and ": expected " in message, message
    assert message.endswith(".") and "\n" not in message, message
