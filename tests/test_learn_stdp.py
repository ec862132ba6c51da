"""Pair-based STDP: the learning window of single spike pairs in closed form, and pos / neg of
random spike trains against brute force (traces and pair sums written out with loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from learn_helpers import forced_layer

from celltrain.learn import STDP
from celltrain.neural import LIF, Conv2d, Direct, Layer, Linear

SIGNS = {
    "hebbian": (0.5, -0.3),
    "anti_hebbian": (-0.4, 0.25),
    "potentiation_only": (0.35, 0.2),
    "depression_only": (-0.15, -0.45),
}


def window(delta, lr_post, lr_pre, tau_pre, tau_post):
    """The pair-based STDP window, for post minus pre spike time ``delta`` (ms)."""
    if delta > 0:
        return lr_post * math.exp(-delta / tau_pre)
    if delta < 0:
        return lr_pre * math.exp(delta / tau_post)
    return lr_post + lr_pre


def window_parts(delta, lr_post, lr_pre, tau_pre, tau_post):
    """(pos, neg) of one pair: each rate's term goes to pos if the rate is > 0, else to neg."""
    terms = []
    if delta >= 0:
        terms.append(lr_post * math.exp(-delta / tau_pre))
    if delta <= 0:
        terms.append(lr_pre * math.exp(delta / tau_post))
    return sum(t for t in terms if t > 0), sum(-t for t in terms if t < 0)


def run(layer, trainer, pre, drive):
    """Present ``pre`` / ``drive`` (each ``(T, B, ...)`` bool), calling the trainer each step;
    return the post spikes ``(T, B, ...)``."""
    posts = []
    for t in range(pre.shape[0]):
        posts.append(layer(pre=pre[t], drive=drive[t])["post"].clone())
        trainer()
    return torch.stack(posts)


# ---- closed form: one pre and one post spike --------------------------------------------------
@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("mode", ["cumulative", "nearest"])
def test_window_of_single_pairs_every_integer_delay(dt, mode):
    """Entry (i, j) of a Linear(N, N) links only pre neuron j and post neuron i, each spiking
    once, so it is one synapse seeing one pair: delta = t_post[i] - t_pre[j]. The diagonal
    covers every integer delay in [-50, 50] ms; four cells (one per sign pattern, overrides of
    one trainer) learn from the same spikes."""
    n = 101
    g = torch.Generator().manual_seed(11)
    t_pre = 55 + torch.randint(0, 11, (n,), generator=g)  # ms
    t_post = t_pre + torch.arange(n) - 50  # diagonal delays -50..50
    steps_pre, steps_post = (t_pre / dt).round().long(), (t_post / dt).round().long()
    T = int(steps_post.max()) + 2
    pre = (torch.arange(T)[:, None] == steps_pre[None])[:, None]  # (T, 1, n)
    drive = (torch.arange(T)[:, None] == steps_post[None])[:, None]
    tiny = torch.full((n, n), 1e-6)
    conns = {k: ("pre", "post", Linear(n, n, weight=tiny)) for k in SIGNS}
    conns["drive"] = ("drive", "post", Direct(n, weight=torch.full((n,), 1000.0)))
    layer = Layer({"post": LIF(n)}, conns, inputs=("pre", "drive"), dt=dt)
    tau_pre, tau_post = 15.0, 25.0
    trainer = STDP(tau_pre=tau_pre, tau_post=tau_post, trace_mode=mode)
    for key, (lr_post, lr_pre) in SIGNS.items():
        _, state = trainer.register_cell(key, layer.cell(key), lr_post=lr_post, lr_pre=lr_pre)
        assert (state.lr_post, state.lr_pre) == (lr_post, lr_pre)
    post = run(layer, trainer, pre, drive)
    assert torch.equal(post, drive)  # the post neurons spiked exactly when driven
    delta = (t_post[:, None] - t_pre[None, :]).tolist()
    for key, (lr_post, lr_pre) in SIGNS.items():
        update = layer.connections[key].updater.weight
        args = (lr_post, lr_pre, tau_pre, tau_post)
        expected = torch.tensor([[window(d, *args) for d in row] for row in delta]).double()
        got = (update.pos - update.neg).double()
        torch.testing.assert_close(got, expected, rtol=3e-5, atol=1e-9)
        diagonal = torch.tensor([window(d, *args) for d in range(-50, 51)]).double()
        torch.testing.assert_close(got.diagonal(), diagonal, rtol=3e-5, atol=1e-9)
        # each side of the window goes to pos or neg by the sign of its rate
        parts = [[window_parts(d, *args) for d in row] for row in delta]
        pos = torch.tensor([[p for p, _ in row] for row in parts]).double()
        neg = torch.tensor([[q for _, q in row] for row in parts]).double()
        torch.testing.assert_close(update.pos.double(), pos, rtol=3e-5, atol=1e-9)
        torch.testing.assert_close(update.neg.double(), neg, rtol=3e-5, atol=1e-9)


@pytest.mark.parametrize("delta", [-50, -17, -1, 0, 1, 3, 50])
def test_single_synapse_applied_weight(delta):
    """A literal single synapse (Linear(1, 1), tiny weight): after update() the weight moved by
    exactly the window value (unbounded updater)."""
    lr_post, lr_pre, tau_pre, tau_post = 0.02, -0.03, 20.0, 10.0
    layer = forced_layer(Linear(1, 1, weight=torch.tensor([[1e-6]])), 1)
    trainer = STDP(lr_post, lr_pre, tau_pre, tau_post)
    trainer.register_cell("syn", layer.cell("syn"))
    t_pre = 55
    T = t_pre + max(delta, 0) + 3
    pre = torch.zeros(T, 1, 1, dtype=torch.bool)
    drive = torch.zeros(T, 1, 1, dtype=torch.bool)
    pre[t_pre], drive[t_pre + delta] = True, True
    assert torch.equal(run(layer, trainer, pre, drive), drive)
    trainer.update()
    change = float(layer.connections["syn"].weight) - 1e-6
    assert change == pytest.approx(window(delta, lr_post, lr_pre, tau_pre, tau_post), rel=2e-5)


def test_nearest_and_cumulative_differ_only_with_several_spikes():
    """Two pre spikes before one post spike: all-to-all sums both, nearest only the last."""
    results = {}
    for mode in ("cumulative", "nearest"):
        layer = forced_layer(Linear(1, 1, weight=torch.tensor([[1e-6]])), 1)
        trainer = STDP(1.0, 0.0, 10.0, 10.0, trace_mode=mode)
        trainer.register_cell("syn", layer.cell("syn"))
        pre = torch.zeros(30, 1, 1, dtype=torch.bool)
        drive = torch.zeros(30, 1, 1, dtype=torch.bool)
        pre[5], pre[12], drive[20] = True, True, True
        run(layer, trainer, pre, drive)
        results[mode] = float(layer.connections["syn"].updater.weight.pos)
    assert results["cumulative"] == pytest.approx(math.exp(-1.5) + math.exp(-0.8), rel=1e-5)
    assert results["nearest"] == pytest.approx(math.exp(-0.8), rel=1e-5)


# ---- brute force: random spike trains --------------------------------------------------------
def np_trace(spikes, tau, dt, mode):
    """Trace of a spike train ``(T, ...)``: a time loop, unit amplitude."""
    decay = math.exp(-dt / tau)
    out = np.zeros(spikes.shape)
    x = np.zeros(spikes.shape[1:])
    for t in range(spikes.shape[0]):
        x = x * decay
        x = x + spikes[t] if mode == "cumulative" else np.where(spikes[t], 1.0, x)
        out[t] = x
    return out


def split(lr, total):
    """(pos, neg) contribution of a rate ``lr`` times a non-negative sum ``total``."""
    return (lr * total, 0 * total) if lr > 0 else (0 * total, -lr * total)


def brute_linear(pre, post, hp, dt):
    """Loops over time, batch, post i and pre j of the two STDP sums."""
    T, B, n_in = pre.shape
    n_out = post.shape[2]
    xpre = np_trace(pre, hp["tau_pre"], dt, hp["trace_mode"])
    xpost = np_trace(post, hp["tau_post"], dt, hp["trace_mode"])
    at_post, at_pre = np.zeros((n_out, n_in)), np.zeros((n_out, n_in))
    for t in range(T):
        for b in range(B):
            for i in range(n_out):
                for j in range(n_in):
                    at_post[i, j] += post[t, b, i] * xpre[t, b, j]
                    at_pre[i, j] += xpost[t, b, i] * pre[t, b, j]
    return at_post, at_pre


def brute_conv(pre, post, hp, dt, kernel, stride, padding):
    """Loops over time, batch, output map o and position (y, x), input channel c and kernel
    offset (ki, kj): post (o, y, x) is linked to pre (c, y*sh + ki - ph, x*sw + kj - pw)."""
    T, B, C, H, W = pre.shape
    _, _, n_maps, Ho, Wo = post.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xpre = np_trace(pre, hp["tau_pre"], dt, hp["trace_mode"])
    xpost = np_trace(post, hp["tau_post"], dt, hp["trace_mode"])
    at_post, at_pre = np.zeros((n_maps, C, kh, kw)), np.zeros((n_maps, C, kh, kw))
    for t in range(T):
        for b in range(B):
            for o in range(n_maps):
                for y in range(Ho):
                    for x in range(Wo):
                        s, tr = post[t, b, o, y, x], xpost[t, b, o, y, x]
                        if s == 0 and tr == 0:
                            continue
                        for c in range(C):
                            for ki in range(kh):
                                for kj in range(kw):
                                    py, px = y * sh + ki - ph, x * sw + kj - pw
                                    if 0 <= py < H and 0 <= px < W:
                                        at_post[o, c, ki, kj] += s * xpre[t, b, c, py, px]
                                        at_pre[o, c, ki, kj] += tr * pre[t, b, c, py, px]
    return at_post, at_pre


def expected_pos_neg(at_post, at_pre, hp, batch):
    scale = 1.0 / batch if hp["batch_reduction"] == "mean" else 1.0
    p1, n1 = split(hp["lr_post"], at_post * scale)
    p2, n2 = split(hp["lr_pre"], at_pre * scale)
    return p1 + p2, n1 + n2


def random_hp(rng, mode, reduction):
    return {
        "lr_post": float(rng.choice([-1, 1]) * rng.uniform(0.01, 0.1)),
        "lr_pre": float(rng.choice([-1, 1]) * rng.uniform(0.01, 0.1)),
        "tau_pre": float(rng.uniform(3.0, 30.0)),
        "tau_post": float(rng.uniform(3.0, 30.0)),
        "trace_mode": mode,
        "batch_reduction": reduction,
    }


CONFIGS = [(m, r) for m in ("cumulative", "nearest") for r in ("mean", "sum")]


@pytest.mark.parametrize("mode,reduction", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_random_trains_match_brute_force(mode, reduction, seed):
    rng = np.random.default_rng(100 + seed)
    B, n_in, n_out, T = int(rng.integers(1, 5)), 5, 4, 30
    dt = float(rng.choice([1.0, 0.5]))
    hp = random_hp(rng, mode, reduction)
    g = torch.Generator().manual_seed(seed)
    layer = forced_layer(Linear(n_in, n_out, weight_range=(0.0, 150.0)), n_out, dt=dt)
    trainer = STDP(**hp)
    trainer.register_cell("syn", layer.cell("syn"))
    pre = torch.rand(T, B, n_in, generator=g) < 0.3
    drive = torch.rand(T, B, n_out, generator=g) < 0.15
    post = run(layer, trainer, pre, drive)
    assert post.any() and not post.all()
    at_post, at_pre = brute_linear(pre.numpy(), post.numpy(), hp, dt)
    pos, neg = expected_pos_neg(at_post, at_pre, hp, B)
    update = layer.connections["syn"].updater.weight
    np.testing.assert_allclose(update.pos.numpy(), pos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(update.neg.numpy(), neg, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,reduction", CONFIGS)
def test_conv2d_random_trains_match_brute_force(mode, reduction):
    rng = np.random.default_rng(7 + len(mode) + len(reduction))
    B, T, dt = int(rng.integers(1, 4)), 14, 1.0
    kernel, stride, padding = (3, 2), (2, 1), (1, 1)
    conv = Conv2d((2, 5, 6), 2, kernel, stride=stride, padding=padding, weight_range=(0.0, 60.0))
    post_shape = conv.out_shape
    assert post_shape == (2, 3, 7)
    hp = random_hp(rng, mode, reduction)
    layer = forced_layer(conv, post_shape, dt=dt)
    trainer = STDP(**hp)
    trainer.register_cell("syn", layer.cell("syn"))
    g = torch.Generator().manual_seed(3)
    pre = torch.rand(T, B, 2, 5, 6, generator=g) < 0.3
    drive = torch.rand(T, B, *post_shape, generator=g) < 0.15
    post = run(layer, trainer, pre, drive)
    assert post.any()
    at_post, at_pre = brute_conv(pre.numpy(), post.numpy(), hp, dt, kernel, stride, padding)
    pos, neg = expected_pos_neg(at_post, at_pre, hp, B)
    update = layer.connections["syn"].updater.weight
    np.testing.assert_allclose(update.pos.numpy(), pos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(update.neg.numpy(), neg, rtol=1e-5, atol=1e-6)


def test_mean_is_sum_over_batch_size():
    """The same spikes with both reductions (two layers, identical input): sum = B * mean."""
    B, T = 3, 20
    g = torch.Generator().manual_seed(5)
    pre = torch.rand(T, B, 4, generator=g) < 0.3
    drive = torch.rand(T, B, 3, generator=g) < 0.2
    result = {}
    for reduction in ("mean", "sum"):
        layer = forced_layer(Linear(4, 3, weight=torch.zeros(3, 4)), 3)
        trainer = STDP(batch_reduction=reduction)
        trainer.register_cell("syn", layer.cell("syn"))
        run(layer, trainer, pre, drive)
        update = layer.connections["syn"].updater.weight
        result[reduction] = (update.pos.clone(), update.neg.clone())
    torch.testing.assert_close(result["sum"][0], B * result["mean"][0])
    torch.testing.assert_close(result["sum"][1], B * result["mean"][1])


# ---- bad hyperparameters -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau_pre": 0.0},
        {"tau_pre": -5.0},
        {"tau_post": 0},
        {"tau_post": -1.0},
        {"tau_pre": math.inf},
        {"tau_post": math.nan},
        {"lr_post": math.nan},
        {"lr_pre": math.inf},
        {"lr_post": -math.inf},
        {"trace_mode": "bogus"},
        {"trace_mode": None},
        {"batch_reduction": "max"},
        {"batch_reduction": "none"},
    ],
)
def test_bad_hyperparameters_raise_value_error(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        STDP(**kwargs)
    # the same values as per-cell overrides: refused, and the cell is not added
    layer = forced_layer(Linear(2, 2), 2)
    trainer = STDP()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        trainer.register_cell("syn", layer.cell("syn"), **kwargs)
    with pytest.raises(AttributeError):
        trainer.get_cell("syn")
    assert list(trainer.monitors) == []
