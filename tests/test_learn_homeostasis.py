"""Homeostasis: the exact change (closed form), its direction, and convergence of a
Poisson-driven neuron to the target rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from learn_helpers import forced_layer

from celltrain.learn import Homeostasis
from celltrain.neural import LIF, Conv2d, Layer, Linear


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_linear_change_in_closed_form(reduction, dt):
    """Every weight onto neuron o moves by lr * reduce_b sum_t (target * dt / 1000 - s_bo(t)),
    whatever the presynaptic activity."""
    B, T, n_in, n_out = 3, 40, 5, 4
    target, lr = 37.0, 0.02
    layer = forced_layer(Linear(n_in, n_out, weight=torch.zeros(n_out, n_in)), n_out, dt=dt)
    trainer = Homeostasis(target_rate=target, lr=lr, batch_reduction=reduction)
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(0)
    pre = torch.rand(T, B, n_in, generator=g) < 0.3
    drive = torch.rand(T, B, n_out, generator=g) < torch.tensor([0.0, 0.01, 0.1, 0.5])
    posts = []
    for t in range(T):
        posts.append(layer(pre=pre[t], drive=drive[t])["post"])
        trainer()
    post = torch.stack(posts).double().numpy()  # (T, B, n_out)
    pos, neg = np.zeros((n_out, n_in)), np.zeros((n_out, n_in))
    for t in range(T):
        for o in range(n_out):
            error = [target * dt / 1000.0 - post[t, b, o] for b in range(B)]
            step = lr * (sum(error) / B if reduction == "mean" else sum(error))
            for j in range(n_in):  # every weight onto o, whatever pre did
                pos[o, j] += max(step, 0.0)  # each step's change is split by its sign
                neg[o, j] += max(-step, 0.0)
    update = layer.connections["syn"].updater.weight
    np.testing.assert_allclose(update.pos.numpy(), pos, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(update.neg.numpy(), neg, rtol=1e-5, atol=1e-7)
    expected = pos - neg
    # neuron 0 never fires (weights up), neuron 3 fires often (weights down)
    assert (expected[0] > 0).all() and (expected[3] < 0).all()


def test_conv2d_change_in_closed_form():
    """For a convolution a weight is shared by all output positions: it moves by the error
    summed over the positions whose receptive field puts that kernel entry on the input (not
    on the zero padding)."""
    B, T, lr, target = 2, 15, 0.01, 50.0
    kernel, stride, padding = (2, 3), (1, 2), (1, 1)
    conv = Conv2d((2, 4, 5), 3, kernel, stride=stride, padding=padding, weight_range=(0, 1))
    post_shape = conv.out_shape
    layer = forced_layer(conv, post_shape)
    trainer = Homeostasis(target_rate=target, lr=lr, batch_reduction="sum")
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(1)
    pre = torch.zeros(T, B, 2, 4, 5, dtype=torch.bool)
    drive = torch.rand(T, B, *post_shape, generator=g) < 0.2
    posts = []
    for t in range(T):
        posts.append(layer(pre=pre[t], drive=drive[t])["post"])
        trainer()
    post = torch.stack(posts).double().numpy()
    _, _, n_maps, Ho, Wo = post.shape
    C, H, W = 2, 4, 5
    expected = np.zeros((n_maps, C, *kernel))
    for t in range(T):
        for b in range(B):
            for o in range(n_maps):
                for y in range(Ho):
                    for x in range(Wo):
                        err = target / 1000.0 - post[t, b, o, y, x]
                        for c in range(C):
                            for ki in range(kernel[0]):
                                for kj in range(kernel[1]):
                                    py = y * stride[0] + ki - padding[0]
                                    px = x * stride[1] + kj - padding[1]
                                    if 0 <= py < H and 0 <= px < W:
                                        expected[o, c, ki, kj] += lr * err
    update = layer.connections["syn"].updater.weight
    np.testing.assert_allclose((update.pos - update.neg).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_direction_above_and_below_target():
    """Driven far above the target rate the weights only go down; silent, they only go up;
    and applying the change moves the weights that way."""
    for drive_p, sign in ((0.5, -1), (0.0, +1)):
        layer = forced_layer(Linear(3, 2, weight=torch.full((2, 3), 5.0)), 2)
        trainer = Homeostasis(target_rate=10.0, lr=0.1)
        trainer.register_cell("syn", layer.cell("syn"))
        g = torch.Generator().manual_seed(2)
        for _ in range(50):
            pre = torch.rand(4, 3, generator=g) < 0.5
            layer(pre=pre, drive=torch.rand(4, 2, generator=g) < drive_p)
            trainer()
        update = layer.connections["syn"].updater.weight
        change = update.pos - update.neg
        assert bool((sign * change > 0).all())
        if sign > 0:  # silent: every step's error is positive
            assert bool((update.neg == 0).all())
        trainer.update()
        weight = layer.connections["syn"].weight
        assert bool((sign * (weight - 5.0) > 0).all())


def test_poisson_driven_neurons_converge_to_target_rate():
    """Four neurons start silent, near, above and far above the target; with the weights
    updated every step they all settle at the target rate (and at a common weight)."""
    torch.manual_seed(0)
    n_in, n_out, B, T, target = 40, 4, 16, 2000, 30.0
    w0 = torch.tensor([2.0, 8.0, 40.0, 120.0])[:, None].expand(n_out, n_in).clone()
    layer = Layer({"post": LIF(n_out)}, {"syn": ("input", "post", Linear(n_in, n_out, weight=w0))})
    trainer = Homeostasis(target_rate=target, lr=2.0)
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(1)
    early, late = torch.zeros(n_out), torch.zeros(n_out)
    for t in range(T):
        out = layer(input=torch.rand(B, n_in, generator=g) < 0.02)["post"].double().mean(0)
        trainer()
        trainer.update()
        if t < 100:
            early += out
        if t >= T - 1000:
            late += out
    early_rate, late_rate = early / 100 * 1000, late / 1000 * 1000
    assert early_rate[0] < 5.0 and early_rate[3] > 100.0  # they did start far apart
    assert torch.allclose(late_rate.float(), torch.full((n_out,), target), atol=5.0), late_rate
    weight = layer.connections["syn"].weight[:, 0]
    assert float(weight.max() - weight.min()) < 0.1 * float(weight.mean())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_rate": -1.0},
        {"target_rate": math.inf},
        {"target_rate": math.nan},
        {"lr": math.nan},
        {"lr": math.inf},
        {"batch_reduction": "max"},
    ],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Homeostasis(**kwargs)
    layer = forced_layer(Linear(2, 2), 2)
    trainer = Homeostasis()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        trainer.register_cell("syn", layer.cell("syn"), **kwargs)
    assert list(trainer.cells) == []
