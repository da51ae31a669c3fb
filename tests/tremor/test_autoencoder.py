"""Convolutional autoencoder: Keras-equivalent shapes and padding, init, schedule, data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from seiscluster.config import Activation
from seiscluster.errors import InputError
from seiscluster.tremor.autoencoder import (
    ACTIVATIONS,
    AutoencoderModule,
    ConvAutoencoder,
    embed,
    exponential_decay,
    load_autoencoder,
    same_padding,
)
from seiscluster.tremor.datamodule import EpochBatchSampler, SpectrogramDataModule, split_ids


@pytest.mark.parametrize(("size", "kernel", "stride", "expected"), [
    (96, 7, 2, (2, 3)),   # TF: out 48, total (47*2 + 7 - 96) = 5
    (128, 5, 2, (1, 2)),
    (48, 5, 2, (1, 2)),
    (64, 3, 2, (0, 1)),
    (95, 7, 2, (3, 3)),   # odd: out 48, total 6
    (5, 7, 2, (3, 3)),    # kernel larger than the input: out 3, total 6
    (10, 3, 1, (1, 1)),
])
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == math.ceil(size / stride)


def test_reference_architecture_shapes_and_parameter_count():
    model = ConvAutoencoder((1, 96, 128))
    assert model.sizes == [(96, 128), (48, 64), (24, 32), (12, 16), (6, 8)]
    # the Keras summary of the reference notebook: 231,929 parameters
    assert sum(p.numel() for p in model.parameters()) == 231_929
    z, r = model(torch.randn(2, 1, 96, 128))
    assert z.shape == (2, 24)
    assert r.shape == (2, 1, 96, 128)
    assert (z > -1).all()  # ELU embedding


@pytest.mark.parametrize("shape", [(1, 95, 127), (3, 17, 9), (2, 16, 16)])
def test_any_input_shape_is_reconstructed_to_its_size(shape):
    model = ConvAutoencoder(shape, channels=[4, 8], kernels=[[3, 3], [5, 3]], strides=[2, 2],
                            latent_dim=3, activation="relu")
    z, r = model(torch.randn(2, *shape))
    assert z.shape == (2, 3)
    assert r.shape == (2, *shape)


def _keras_conv(x, w, b, s):
    """TensorFlow conv2d 'same' (explicit asymmetric padding, the extra row at the end)."""
    (bh, ah), (bw, aw) = same_padding(x.shape[-2], w.shape[-2], s), \
        same_padding(x.shape[-1], w.shape[-1], s)
    return F.conv2d(F.pad(x, (bw, aw, bh, ah)), w, b, stride=s)


def _keras_deconv(x, w, b, s):
    """TensorFlow conv2d_transpose 'same': the adjoint of conv2d 'same' of size n * s."""
    h, wd = x.shape[-2] * s, x.shape[-1] * s
    bh, bw = same_padding(h, w.shape[-2], s)[0], same_padding(wd, w.shape[-1], s)[0]
    return F.conv_transpose2d(x, w, b, stride=s)[..., bh:bh + h, bw:bw + wd]


def _keras_reference(model, x):
    """The Keras model (original coordinates, kernels = the model's reversed)."""
    def flip(t):
        return t.flip((-2, -1))

    h = x
    for conv, s in zip(model.encoder_convs, model.strides, strict=True):
        h = F.elu(_keras_conv(h, flip(conv.weight), conv.bias, s))
    z = F.elu(model.to_latent(flip(h).flatten(1)))
    d = flip(F.elu(model.from_latent(z)).view(-1, *model.flat_shape))
    for i, (deconv, s) in enumerate(zip(model.decoder_convs, model.strides[::-1], strict=True)):
        d = _keras_deconv(d, flip(deconv.weight), deconv.bias, s)
        d = F.elu(d) if i < len(model.decoder_convs) - 1 else d
    return z, d


@pytest.mark.parametrize(("shape", "kernels", "strides"), [
    ((1, 96, 128), [[7, 5], [5, 3], [5, 3], [5, 3]], [2, 2, 2, 2]),  # the reference
    ((2, 16, 20), [[4, 4], [3, 2]], [2, 1]),                        # even kernels, stride 1
])
def test_the_model_is_exactly_the_keras_model(shape, kernels, strides):
    torch.manual_seed(0)
    model = ConvAutoencoder(shape, channels=[8, 16, 32, 64][:len(kernels)], kernels=kernels,
                            strides=strides, latent_dim=6)
    for p in model.parameters():  # non-zero biases too
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        z, r = model(x)
        z_ref, r_ref = _keras_reference(model, x)
    torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r, r_ref, rtol=1e-4, atol=1e-5)


def test_channels_last_encoder_gives_the_same_embedding_and_gradients():
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 96, 128), latent_dim=6)  # the reference architecture
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    cl = ConvAutoencoder((1, 96, 128), latent_dim=6)
    cl.load_state_dict(model.state_dict())
    cl.to(memory_format=torch.channels_last)
    x = torch.randn(3, 1, 96, 128)
    z, z_cl = model.encode(x), cl.encode(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(z_cl, z, rtol=1e-4, atol=1e-6)
    z.square().sum().backward()
    z_cl.square().sum().backward()
    pairs = zip([*cl.encoder_convs.parameters(), *cl.to_latent.parameters()],
                [*model.encoder_convs.parameters(), *model.to_latent.parameters()], strict=True)
    for a, b in pairs:  # summation orders differ: tolerance relative to the largest gradient
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-4 * float(b.grad.abs().max()))


def test_glorot_uniform_init_and_zero_bias():
    model = ConvAutoencoder((1, 32, 32), channels=[8, 16], kernels=[[5, 3], [3, 3]],
                            strides=[2, 2], latent_dim=4)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert m.weight.abs().max() <= bound
            assert m.weight.abs().max() > 0.5 * bound
            assert not m.bias.any()


def test_activation_names_agree_with_the_config_check():
    assert tuple(ACTIVATIONS) == tuple(a.value for a in Activation)


def test_keras_exponential_decay():
    assert exponential_decay(0, 0.5, 1000) == 1.0
    assert exponential_decay(1000, 0.5, 1000) == pytest.approx(0.5)
    assert exponential_decay(500, 0.5, 1000) == pytest.approx(math.sqrt(0.5))
    assert exponential_decay(1999, 0.5, 1000, staircase=True) == 0.5


def test_learning_rate_decays_every_optimiser_step():
    module = AutoencoderModule(model=dict(input_shape=[1, 8, 8], channels=[2], kernels=[[3, 3]],
                                          strides=[2], latent_dim=2),
                               lr=1e-3, lr_decay_rate=0.5, lr_decay_steps=10)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_split_is_the_reference_train_test_split():
    train, val = split_ids(2390, 0.2, 46)
    ref_train, ref_val = train_test_split(np.arange(2390), test_size=0.2, train_size=0.8,
                                          random_state=46, shuffle=True)
    assert (train.numpy() == ref_train).all() and (val.numpy() == ref_val).all()
    assert len(val) == 478
    with pytest.raises(InputError, match="at least 2"):
        split_ids(1, 0.2, 46)


def test_epoch_batches_depend_only_on_seed_and_epoch():
    a = EpochBatchSampler(10, 4, shuffle=True, seed=3)
    b = EpochBatchSampler(10, 4, shuffle=True, seed=3)
    a.set_epoch(5)
    b.set_epoch(5)
    first = [t.tolist() for t in a]
    assert first == [t.tolist() for t in b]
    assert sorted(i for batch in first for i in batch) == list(range(10)) and len(a) == 3
    b.set_epoch(6)
    assert first != [t.tolist() for t in b]


def test_datamodule_batches_carry_stable_ids():
    x = np.arange(12 * 4 * 4, dtype=np.float32).reshape(12, 1, 4, 4)
    dm = SpectrogramDataModule(x, batch_size=5, val_fraction=0.25, split_seed=46)
    seen = []
    for xb, ids in dm.train_dataloader():
        assert torch.equal(xb, torch.from_numpy(x)[ids])
        seen += ids.tolist()
    val = [i for _, ids in dm.val_dataloader() for i in ids.tolist()]
    assert sorted(seen + val) == list(range(12)) and len(val) == 3


def test_embeddings_are_deterministic_and_checkpoints_round_trip(tmp_path):
    from seiscluster.tremor.dec import DECModel, save_checkpoint

    torch.manual_seed(0)
    model = ConvAutoencoder((2, 16, 12), channels=[4, 8], kernels=[[3, 3], [3, 3]],
                            strides=[2, 2], latent_dim=3)
    x = torch.randn(7, 2, 16, 12)
    z1, r1 = embed(model, x, batch_size=3, reconstruct=True)
    z2, _ = embed(model, x, batch_size=7)
    np.testing.assert_allclose(z1, z2, rtol=1e-5, atol=1e-6)
    assert r1.shape == (7, 2, 16, 12)
    save_checkpoint(tmp_path / "m.pt", DECModel(model, np.zeros((2, 3), np.float32)))
    again = load_autoencoder(tmp_path / "m.pt")
    np.testing.assert_array_equal(embed(again, x)[0], embed(model, x)[0])
