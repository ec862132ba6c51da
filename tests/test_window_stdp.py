"""STDP learning a ``Layer.run`` window at once (``window_pairs`` closed form and the dense
window path) against the per-step loop and a brute-force all-pairs sum, and
``SpikingModule.runs_windows``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_window_layer import conv_layer, exponential_layer
from torch import nn

import celltrain.learn.stdp as stdp_module
from celltrain.learn import MSTDP, MSTDPET, STDP, TripletSTDP
from celltrain.lightning import DiehlCook
from celltrain.lightning.module import SpikingModule
from celltrain.neural import PoissonEncoder, diehl_cook_layer

TOL = {"rtol": 1e-9, "atol": 1e-12}


@pytest.fixture
def closed_form_calls(monkeypatch):
    """Count the calls of the closed-form ``window_pairs``."""
    calls = []
    original = stdp_module.window_pairs

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(stdp_module, "window_pairs", counting)
    return calls


def network(seed, inputs=30, neurons=20, dt=1.0, **stdp_kwargs):
    """A Diehl & Cook layer with STDP on ``input_exc``."""
    torch.manual_seed(seed)
    layer = diehl_cook_layer(inputs, neurons, dt, weight_total=20.0)
    stdp = STDP(**stdp_kwargs)
    stdp.register_cell("input_exc", layer.cell("input_exc"))
    return layer, stdp


def spikes_of(seed, steps, batch, inputs=30, rate=0.25):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((steps, batch, inputs), generator=g) < rate


def per_step(layer, stdp, x):
    """``layer(...)`` and ``stdp()`` at every step; the exc spikes ``(T, B, n)``."""
    out = []
    for t in range(x.shape[0]):
        out.append(layer(input=x[t])["exc"])
        stdp()
    return torch.stack(out)


def windows(layer, stdp, x, splits=()):
    """``layer.run`` over the parts of ``x`` cut at ``splits``, ``stdp()`` after each."""
    bounds = [0, *splits, x.shape[0]]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        out.append(layer.run(input=x[a:b])["exc"])
        stdp()
    return torch.cat(out)


def assert_pending_match(a, b):
    wa, wb = a.connections["input_exc"].updater.weight, b.connections["input_exc"].updater.weight
    torch.testing.assert_close(wa.pos, wb.pos, **TOL)
    torch.testing.assert_close(wa.neg, wb.neg, **TOL)
    assert wa.batch_reduction == wb.batch_reduction
    ta, tb = a.neurons["exc"].updater.theta, b.neurons["exc"].updater.theta
    torch.testing.assert_close(ta.pos, tb.pos, **TOL)
    torch.testing.assert_close(ta.neg, tb.neg, **TOL)


RATES = {"hebbian": (0.5, -0.3), "anti_hebbian": (-0.4, 0.25)}


@pytest.mark.parametrize("splits", [(), (23,), (9, 40)])
@pytest.mark.parametrize("rates", sorted(RATES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_window_stdp_equals_per_step_stdp(float64, closed_form_calls, reduction, rates, splits):
    lr_post, lr_pre = RATES[rates]
    kwargs = dict(
        lr_post=lr_post, lr_pre=lr_pre, tau_pre=15.0, tau_post=25.0, batch_reduction=reduction
    )
    seed = len(splits) + 3 * (reduction == "sum")
    window_layer, window_stdp = network(seed, **kwargs)
    loop_layer, loop_stdp = network(seed, **kwargs)
    x = spikes_of(seed, 60, 3)
    got = windows(window_layer, window_stdp, x, splits)
    want = per_step(loop_layer, loop_stdp, x)
    assert torch.equal(got, want) and want.any()
    assert len(closed_form_calls) == len(splits) + 1  # the closed form was used
    update = window_layer.connections["input_exc"].updater.weight
    assert update.pos.any() and update.neg.any()
    assert_pending_match(window_layer, loop_layer)
    window_stdp.update()
    loop_stdp.update()
    torch.testing.assert_close(
        window_layer.connections["input_exc"].weight,
        loop_layer.connections["input_exc"].weight,
        **TOL,
    )
    torch.testing.assert_close(
        window_layer.neurons["exc"].theta, loop_layer.neurons["exc"].theta, **TOL
    )
    assert not window_layer.connections["input_exc"].updater.weight.pos.any()


@pytest.mark.parametrize(
    ("seed", "batch", "steps"), [(0, 1, 50), (1, 4, 35), (2, 2, 70), (3, 10, 30)]
)
def test_window_stdp_random_batches_and_lengths(float64, seed, batch, steps):
    kwargs = dict(lr_post=0.2, lr_pre=-0.1, tau_pre=8.0, tau_post=12.0)
    window_layer, window_stdp = network(seed, **kwargs)
    loop_layer, loop_stdp = network(seed, **kwargs)
    x = spikes_of(10 + seed, steps, batch, rate=0.3)
    g = torch.Generator().manual_seed(seed)
    split = int(torch.randint(1, steps - 1, (1,), generator=g))
    assert torch.equal(
        windows(window_layer, window_stdp, x, (split,)), per_step(loop_layer, loop_stdp, x)
    )
    assert_pending_match(window_layer, loop_layer)


@pytest.mark.parametrize("splits", [(), (30,)])
def test_nearest_traces_take_the_dense_window_path(float64, closed_form_calls, splits):
    kwargs = dict(lr_post=0.5, lr_pre=-0.3, tau_pre=10.0, tau_post=6.0, trace_mode="nearest")
    window_layer, window_stdp = network(20, **kwargs)
    loop_layer, loop_stdp = network(20, **kwargs)
    x = spikes_of(20, 55, 3, rate=0.3)
    assert torch.equal(
        windows(window_layer, window_stdp, x, splits), per_step(loop_layer, loop_stdp, x)
    )
    assert not closed_form_calls
    assert window_layer.connections["input_exc"].updater.weight.neg.any()
    assert_pending_match(window_layer, loop_layer)


def every_cell_network(kind, seed):
    """A layer of the given kind with STDP on every connection (input, one-to-one,
    lateral, recurrent, convolutional, exponential synapses)."""
    if kind == "diehl_cook":
        torch.manual_seed(seed)
        layer, shape = diehl_cook_layer(30, 20, 1.0, weight_total=20.0), (30,)
    elif kind == "conv":
        layer, shape = conv_layer(seed), (2, 7, 7)
    else:
        layer, shape = exponential_layer(seed), (16,)
    return layer, shape


@pytest.mark.parametrize("mode", ["cumulative", "nearest"])
@pytest.mark.parametrize("kind", ["diehl_cook", "conv", "exponential"])
def test_window_stdp_on_every_connection_kind(float64, kind, mode):
    kwargs = dict(lr_post=0.3, lr_pre=-0.2, tau_pre=7.0, tau_post=11.0, trace_mode=mode)
    layers, trainers = [], []
    for _ in range(2):
        layer, shape = every_cell_network(kind, 60)
        stdp = STDP(**kwargs)
        for name in layer.connections:
            stdp.register_cell(name, layer.cell(name))
        layers.append(layer)
        trainers.append(stdp)
    x = torch.rand((50, 3, *shape), generator=torch.Generator().manual_seed(61)) < 0.3
    window_layer, loop_layer = layers
    window_layer.run(input=x[:20])
    trainers[0]()
    window_layer.run(input=x[20:])
    trainers[0]()
    for t in range(50):
        loop_layer(input=x[t])
        trainers[1]()
    for name in window_layer.connections:
        got = window_layer.connections[name].updater.weight
        want = loop_layer.connections[name].updater.weight
        assert want.pos.any() and want.neg.any(), name
        torch.testing.assert_close(got.pos, want.pos, **TOL)
        torch.testing.assert_close(got.neg, want.neg, **TOL)


def test_eval_mode_learns_nothing_from_a_window(float64):
    layer, stdp = network(21, lr_post=0.5, lr_pre=-0.3)
    stdp.eval()
    layer.run(input=spikes_of(21, 30, 2))
    stdp()
    update = layer.connections["input_exc"].updater.weight
    assert not update.pos.any() and not update.neg.any()


@pytest.mark.parametrize("reduction", [None, "none", "sum", "mean"])
@pytest.mark.parametrize("mode", ["cumulative", "nearest"])
def test_stdp_terms_with_post_scale_over_a_window(float64, reduction, mode):
    """``stdp_terms`` after a run (the second window, so the traces carry state in) equals the
    sum of the per-step terms with the same per-sample scale."""
    batch = 3
    kwargs = dict(tau_pre=12.0, tau_post=7.0, trace_mode=mode, batch_reduction="mean")
    window_layer, window_stdp = network(30, **kwargs)
    loop_layer, loop_stdp = network(30, **kwargs)
    x = spikes_of(30, 50, batch, rate=0.3)
    scale = torch.rand(batch, generator=torch.Generator().manual_seed(1)) * 2 - 0.5
    window_layer.run(input=x[:20])
    window_layer.run(input=x[20:])
    got = window_stdp.stdp_terms("input_exc", post_scale=scale, reduction=reduction)
    want = None
    for t in range(x.shape[0]):
        loop_layer(input=x[t])
        terms = loop_stdp.stdp_terms("input_exc", post_scale=scale, reduction=reduction)
        if t >= 20:
            want = terms if want is None else tuple(w + s for w, s in zip(want, terms))
    weight_shape = window_layer.connections["input_exc"].weight.shape
    shape = (batch, *weight_shape) if reduction == "none" else weight_shape
    for g, w in zip(got, want):
        assert g.shape == shape
        assert w.abs().max() > 0
        torch.testing.assert_close(g, w, **TOL)


def test_stdp_terms_before_any_step_is_none(float64):
    _, stdp = network(0)
    assert stdp.stdp_terms("input_exc") is None


def brute_force_pairs(post, pre, dt, tau_pre, tau_post):
    """All-pairs sums from the spike trains ``post (T, B, n)`` and ``pre (T, B, m)``:
    ``P[i, j] = sum_b sum_{t: post} sum_{s <= t: pre} exp(-(t - s) dt / tau_pre)`` and
    ``N[i, j] = sum_b sum_{s: pre} sum_{t <= s: post} exp(-(s - t) dt / tau_post)``."""
    post, pre = post.numpy(), pre.numpy()
    steps, batch, n = post.shape
    m = pre.shape[2]
    pos, neg = np.zeros((n, m)), np.zeros((n, m))
    for b in range(batch):
        for t in range(steps):
            for s in range(steps):
                pairs = np.outer(post[t, b], pre[s, b])
                if not pairs.any():
                    continue
                if s <= t:
                    pos += pairs * math.exp(-(t - s) * dt / tau_pre)
                if t <= s:
                    neg += pairs * math.exp(-(s - t) * dt / tau_post)
    return torch.from_numpy(pos), torch.from_numpy(neg)


@pytest.mark.parametrize(("reduction", "splits"), [("mean", ()), ("sum", (13, 27))])
def test_window_stdp_against_brute_force_pairs(float64, reduction, splits):
    dt, tau_pre, tau_post, lr_post, lr_pre = 0.5, 6.0, 9.0, 0.3, -0.2
    batch, steps = 2, 40
    torch.manual_seed(40)
    layer = diehl_cook_layer(8, 5, dt, weight_total=20.0)
    stdp = STDP(lr_post, lr_pre, tau_pre, tau_post, batch_reduction=reduction)
    stdp.register_cell("input_exc", layer.cell("input_exc"))
    x = spikes_of(40, steps, batch, inputs=8, rate=0.35)
    post = windows(layer, stdp, x, splits)
    assert post.sum() >= 5
    pos, neg = brute_force_pairs(post, x, dt, tau_pre, tau_post)
    divide = batch if reduction == "mean" else 1
    update = layer.connections["input_exc"].updater.weight
    torch.testing.assert_close(update.pos, lr_post * pos / divide, **TOL)
    torch.testing.assert_close(update.neg, -lr_pre * neg / divide, **TOL)
    # the terms of the last window alone, against brute force with the carried traces: the
    # pairs of the whole train whose later spike lies in the last window
    if splits:
        last = splits[-1]
        terms = stdp.stdp_terms("input_exc", reduction="sum")
        pos_before, neg_before = brute_force_pairs(post[:last], x[:last], dt, tau_pre, tau_post)
        torch.testing.assert_close(terms[0], pos - pos_before, **TOL)
        torch.testing.assert_close(terms[1], neg - neg_before, **TOL)


# ---- SpikingModule.runs_windows ---------------------------------------------------------------
def spiking_module(trainer, network=None):
    layer = network if network is not None else diehl_cook_layer(16, 10)
    if network is None:
        trainer.register_cell("input_exc", layer.cell("input_exc"))
    return SpikingModule(layer, trainer, PoissonEncoder(10), output="exc")


def test_diehl_cook_runs_windows():
    model = DiehlCook(inputs=16, neurons=10, steps=20)
    assert model.trainers["stdp"].learns_windows
    assert model.runs_windows(True) and model.runs_windows(False)


def test_trainer_without_window_learning_runs_step_by_step():
    module = spiking_module(TripletSTDP())
    assert not module.runs_windows(True)
    assert module.runs_windows(False)  # no learning: the network alone decides


@pytest.mark.parametrize("rule", [MSTDP, MSTDPET])
def test_reward_modulated_rules_do_not_learn_windows(rule):
    """MSTDP / MSTDPET need the reward of every step (``forward(reward)`` per step): a window
    would scale every step's terms by one reward, so they must not claim ``learns_windows``."""
    module = spiking_module(rule())
    assert not module.runs_windows(True)
    assert module.runs_windows(False)
    assert rule.learns_windows is False


def test_overridden_step_trainers_runs_step_by_step():
    class Custom(SpikingModule):
        def step_trainers(self, step, spikes, y):
            super().step_trainers(step, spikes, y)

    layer = diehl_cook_layer(16, 10)
    stdp = STDP()
    stdp.register_cell("input_exc", layer.cell("input_exc"))
    module = Custom(layer, stdp, PoissonEncoder(10), output="exc")
    assert not module.runs_windows(True)
    assert module.runs_windows(False)
    assert spiking_module(STDP()).runs_windows(True)


def test_network_that_is_not_a_layer_runs_step_by_step():
    class Wrapped(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer
            self.neurons = layer.neurons
            self.dt = layer.dt

        def reset(self):
            self.layer.reset()

        def forward(self, **inputs):
            return self.layer(**inputs)

    module = SpikingModule(Wrapped(diehl_cook_layer(16, 10)), STDP(), PoissonEncoder(10))
    assert not module.runs_windows(True) and not module.runs_windows(False)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_simulate_window_path_equals_step_path(float64, reduction):
    """``SpikingModule.simulate`` gives the same counts and pending updates whether it runs the
    sample in one window or step by step."""
    models = []
    for _ in range(2):
        torch.manual_seed(50)
        models.append(DiehlCook(inputs=16, neurons=10, steps=40, batch_reduction=reduction, seed=3))
    window, stepped = models
    stepped.runs_windows = lambda learn: False
    x = torch.rand(3, 16, generator=torch.Generator().manual_seed(4))
    index = torch.arange(3)
    for epoch in range(2):  # the second sample starts from the first one's pending terms
        got = window.simulate(x, index, epoch, learn=True)
        want = stepped.simulate(x, index, epoch, learn=True)
        assert set(got) == set(want)
        for name in want:
            assert torch.equal(got[name], want[name]), name
    assert want["exc"].sum() > 0
    assert_pending_match(window.network, stepped.network)
