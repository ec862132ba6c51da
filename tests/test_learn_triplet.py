"""Triplet STDP against an independent implementation of Pfister & Gerstner (2006) written
from spike times (sums over pairs and triplets for all-to-all, last spikes for nearest)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from learn_helpers import forced_layer

from celltrain.learn import TripletSTDP
from celltrain.neural import Linear


def kernel_sum(times, t, tau, mode, strict):
    """Sum over spike times (ms) ``s <= t`` (``s < t`` if strict) of ``exp(-(t - s)/tau)``
    for all-to-all; for nearest only the latest such spike counts."""
    before = [s for s in times if (s < t if strict else s <= t)]
    if not before:
        return 0.0
    if mode == "nearest":
        return math.exp(-(t - max(before)) / tau)
    return sum(math.exp(-(t - s) / tau) for s in before)


def pfister_gerstner(pre, post, hp, dt):
    """Weight change per (post i, pre j) as four separate sums (pair / triplet, post / pre).

    At a post spike at t: A2+ r1(t) + A3+ r1(t) o2(t - eps); at a pre spike at t:
    -o1(t) [A2- + A3- r2(t - eps)], with r1 (tau+) and r2 (tau_x) presynaptic, o1 (tau-)
    and o2 (tau_y) postsynaptic detectors. Coincident spikes count (r1 and o1 include the
    spike of their own step), the triplet factors exclude their own step's spike.
    """
    T, B, n_in = pre.shape
    n_out = post.shape[2]
    sums = {k: np.zeros((B, n_out, n_in)) for k in ("p2", "p3", "d2", "d3")}
    mode = hp["trace_mode"]
    for b in range(B):
        for i in range(n_out):
            post_times = [t * dt for t in range(T) if post[t, b, i]]
            for j in range(n_in):
                pre_times = [t * dt for t in range(T) if pre[t, b, j]]
                for t in post_times:
                    r1 = kernel_sum(pre_times, t, hp["tau_plus"], mode, strict=False)
                    o2 = kernel_sum(post_times, t, hp["tau_y"], mode, strict=True)
                    sums["p2"][b, i, j] += r1
                    sums["p3"][b, i, j] += r1 * o2
                for t in pre_times:
                    o1 = kernel_sum(post_times, t, hp["tau_minus"], mode, strict=False)
                    r2 = kernel_sum(pre_times, t, hp["tau_x"], mode, strict=True)
                    sums["d2"][b, i, j] += o1
                    sums["d3"][b, i, j] += o1 * r2
    reduce = np.mean if hp["batch_reduction"] == "mean" else np.sum
    rates = {"p2": hp["lr2_post"], "p3": hp["lr3_post"], "d2": hp["lr2_pre"], "d3": hp["lr3_pre"]}
    pos, neg = np.zeros((n_out, n_in)), np.zeros((n_out, n_in))
    for key, lr in rates.items():
        term = lr * reduce(sums[key], axis=0)
        if lr > 0:
            pos += term
        else:
            neg -= term
    return pos, neg


CASES = [
    ("cumulative", "mean", (0.05, 0.08, -0.07, -0.03)),
    ("cumulative", "sum", (0.02, 0.1, -0.05, -0.04)),
    ("nearest", "mean", (0.03, 0.06, -0.04, -0.02)),
    ("nearest", "sum", (-0.02, 0.07, 0.03, -0.05)),  # unusual signs go to the other sums
]


@pytest.mark.parametrize("mode,reduction,rates", CASES)
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_random_trains_match_pfister_gerstner(mode, reduction, rates, dt):
    rng = np.random.default_rng([CASES.index((mode, reduction, rates)), int(dt * 2)])
    B, n_in, n_out, T = int(rng.integers(1, 4)), 3, 2, 50
    hp = {
        "lr2_post": rates[0],
        "lr3_post": rates[1],
        "lr2_pre": rates[2],
        "lr3_pre": rates[3],
        "tau_plus": float(rng.uniform(5, 20)),
        "tau_x": float(rng.uniform(20, 60)),
        "tau_minus": float(rng.uniform(5, 30)),
        "tau_y": float(rng.uniform(20, 60)),
        "trace_mode": mode,
        "batch_reduction": reduction,
    }
    layer = forced_layer(Linear(n_in, n_out, weight_range=(0.0, 150.0)), n_out, dt=dt)
    trainer = TripletSTDP(**hp)
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(int(rng.integers(0, 1000)))
    pre = torch.rand(T, B, n_in, generator=g) < 0.25
    drive = torch.rand(T, B, n_out, generator=g) < 0.2
    posts = []
    for t in range(T):
        posts.append(layer(pre=pre[t], drive=drive[t])["post"].clone())
        trainer()
    post = torch.stack(posts)
    assert post.sum() >= 4 and pre.sum() >= 4
    pos, neg = pfister_gerstner(pre.numpy(), post.numpy(), hp, dt)
    update = layer.connections["syn"].updater.weight
    np.testing.assert_allclose(update.pos.numpy(), pos, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(update.neg.numpy(), neg, rtol=2e-5, atol=1e-6)


def test_triplet_term_needs_an_earlier_post_spike():
    """Pre at 0, post at 5: pair potentiation only. A second post spike at 10 adds the
    triplet term r1(10) * o2(10 - eps) = exp(-10/tau+) * exp(-5/tau_y)."""
    hp = dict(lr2_post=0.0, lr3_post=1.0, lr2_pre=0.0, lr3_pre=0.0)
    hp.update(tau_plus=10.0, tau_x=50.0, tau_minus=10.0, tau_y=20.0)
    layer = forced_layer(Linear(1, 1, weight=torch.tensor([[1e-6]])), 1)
    trainer = TripletSTDP(**hp)
    trainer.register_cell("syn", layer.cell("syn"))
    pre = torch.zeros(12, 1, 1, dtype=torch.bool)
    drive = torch.zeros(12, 1, 1, dtype=torch.bool)
    pre[0], drive[5] = True, True
    update = layer.connections["syn"].updater.weight
    for t in range(12):
        if t == 10:
            assert float(update.pos) == 0.0  # one post spike: no triplet yet
            drive[10] = True
        layer(pre=pre[t], drive=drive[t])
        trainer()
    assert float(update.pos) == pytest.approx(math.exp(-1.0) * math.exp(-0.25), rel=1e-5)


def test_defaults_are_the_papers_all_to_all_visual_cortex_fit():
    trainer = TripletSTDP()
    d = trainer.defaults
    assert d["lr2_post"] == pytest.approx(5e-10) and d["lr3_post"] == pytest.approx(6.2e-3)
    assert d["lr2_pre"] == pytest.approx(-7e-3) and d["lr3_pre"] == pytest.approx(-2.3e-4)
    assert (d["tau_plus"], d["tau_x"], d["tau_minus"], d["tau_y"]) == (16.8, 101.0, 33.7, 125.0)
    assert d["trace_mode"] == "cumulative"


def test_clear_forgets_the_triplet_history():
    """After clear(), the slow traces restart: the same spikes give the same terms again."""
    hp = dict(lr2_post=0.1, lr3_post=0.5, lr2_pre=-0.1, lr3_pre=-0.5)
    layer = forced_layer(Linear(2, 2, weight=torch.full((2, 2), 1e-6)), 2)
    trainer = TripletSTDP(**hp)
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(0)
    pre = torch.rand(20, 1, 2, generator=g) < 0.4
    drive = torch.rand(20, 1, 2, generator=g) < 0.4
    update = layer.connections["syn"].updater.weight
    results = []
    for _ in range(2):
        layer.reset()
        trainer.clear()
        update.clear()
        for t in range(20):
            layer(pre=pre[t], drive=drive[t])
            trainer()
        results.append((update.pos.clone(), update.neg.clone()))
    torch.testing.assert_close(results[0], results[1])
    assert results[0][0].sum() > 0 and results[0][1].sum() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau_plus": 0.0},
        {"tau_x": -1.0},
        {"tau_minus": math.nan},
        {"tau_y": 0},
        {"lr2_post": math.inf},
        {"lr3_post": math.nan},
        {"lr2_pre": -math.inf},
        {"lr3_pre": math.nan},
        {"trace_mode": "triplet"},
        {"batch_reduction": "median"},
    ],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TripletSTDP(**kwargs)
    layer = forced_layer(Linear(2, 2), 2)
    trainer = TripletSTDP()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        trainer.register_cell("syn", layer.cell("syn"), **kwargs)
    with pytest.raises(TypeError, match="tau_pre"):
        trainer.register_cell("syn", layer.cell("syn"), tau_pre=20.0)  # not a triplet name
    assert list(trainer.cells) == []
