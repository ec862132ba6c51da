"""Reward-modulated STDP (Florian 2007): the paper's single-synapse example, step by step, from
its discrete equations written out here; per-sample rewards; bad rewards and hyperparameters."""

from __future__ import annotations

import math

import pytest
import torch
from learn_helpers import forced_layer

from celltrain.learn import MSTDP, MSTDPET, STDP
from celltrain.neural import Conv2d, Linear

PRE_MS = (10, 85, 115, 135)
POST_MS = (15, 75, 110, 140)
T_MS = 200


def reward_at(t_ms):
    """+1 up to (and including) 100 ms, -1 after."""
    return 1.0 if t_ms <= 100 else -1.0


def florian_expected(rule, dt):
    """Florian (2007) discrete-time equations, one synapse, weight after every step.

    P+ <- P+ exp(-dt/tau+) + A+ xi_pre;  P- <- P- exp(-dt/tau-) + A- xi_post;
    zeta = P+ xi_post + P- xi_pre;
    MSTDP:   w <- w + gamma r zeta;
    MSTDPET: z <- z exp(-dt/tau_z) + zeta / tau_z;  w <- w + gamma dt r z;
    STDP = MSTDP with r = 1.
    """
    gamma, a_plus, a_minus = 0.2, 1.0, -1.0  # gamma A+ = 0.2 = lr_post, gamma A- = -0.2 = lr_pre
    tau_plus = tau_minus = 20.0
    tau_z = 25.0
    steps = round(T_MS / dt)
    pre_steps = {round(t / dt) for t in PRE_MS}
    post_steps = {round(t / dt) for t in POST_MS}
    p_plus = p_minus = z = 0.0
    w = 0.2
    out = []
    for k in range(steps):
        xi_pre = 1.0 if k in pre_steps else 0.0
        xi_post = 1.0 if k in post_steps else 0.0
        p_plus = p_plus * math.exp(-dt / tau_plus) + a_plus * xi_pre
        p_minus = p_minus * math.exp(-dt / tau_minus) + a_minus * xi_post
        zeta = p_plus * xi_post + p_minus * xi_pre
        r = reward_at(k * dt)
        if rule == "STDP":
            w += gamma * zeta
        elif rule == "MSTDP":
            w += gamma * r * zeta
        else:
            z = z * math.exp(-dt / tau_z) + zeta / tau_z
            w += gamma * dt * r * z
        out.append(w)
    return out


@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("rule", ["STDP", "MSTDP", "MSTDPET"])
def test_florian_single_synapse_trajectory(rule, dt):
    layer = forced_layer(Linear(1, 1, weight=torch.tensor([[0.2]])), 1, dt=dt)
    kwargs = {"lr_post": 0.2, "lr_pre": -0.2, "tau_pre": 20.0, "tau_post": 20.0}
    if rule == "MSTDPET":
        trainer = MSTDPET(tau_eligibility=25.0, **kwargs)
    else:
        trainer = {"STDP": STDP, "MSTDP": MSTDP}[rule](**kwargs)
    trainer.register_cell("syn", layer.cell("syn"))
    steps = round(T_MS / dt)
    pre_steps = {round(t / dt) for t in PRE_MS}
    post_steps = {round(t / dt) for t in POST_MS}
    got, spikes = [], []
    for k in range(steps):
        pre = torch.tensor([[k in pre_steps]])
        drive = torch.tensor([[k in post_steps]])
        out = layer(pre=pre, drive=drive)
        spikes.append(bool(out["post"]))
        if rule == "STDP":
            trainer()
        else:
            trainer(reward_at(k * dt))
        trainer.update()
        got.append(float(layer.connections["syn"].weight))
    assert [k for k, s in enumerate(spikes) if s] == sorted(post_steps)
    expected = florian_expected(rule, dt)
    torch.testing.assert_close(
        torch.tensor(got, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-6,
    )
    assert len(set(expected)) > 3  # the trajectory actually moves
    if rule != "STDP":  # the reward flip matters: not the plain STDP result
        plain = florian_expected("STDP", dt)
        assert abs(expected[-1] - plain[-1]) > 1e-3


def random_trains(B, T, n_in, n_out, seed):
    """Random pre / drive spike trains ``(T, B, *shape)`` and rewards ``(T, B)``."""
    in_shape = (n_in,) if isinstance(n_in, int) else tuple(n_in)
    out_shape = (n_out,) if isinstance(n_out, int) else tuple(n_out)
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(T, B, *in_shape, generator=g) < 0.3,
        torch.rand(T, B, *out_shape, generator=g) < 0.2,
        torch.randn(T, B, generator=g),
    )


def make_conv():
    return Conv2d((1, 4, 4), 2, 3, padding=1, stride=1, weight_range=(0, 1e-3))


def pending_after(cls, pre, drive, rewards, reduction, connection=None, **kwargs):
    """Run one fresh layer with ``cls`` on the given trains and per-step rewards; return the
    pending ``pos - neg`` (float64)."""
    if connection is None:
        connection = Linear(pre.shape[2], drive.shape[2], weight_range=(0, 1e-3))
    layer = forced_layer(connection, tuple(drive.shape[2:]))
    trainer = cls(batch_reduction=reduction, **kwargs)
    trainer.register_cell("syn", layer.cell("syn"))
    for t in range(pre.shape[0]):
        layer(pre=pre[t], drive=drive[t])
        trainer(rewards[t])
    update = layer.connections["syn"].updater.weight
    return (update.pos - update.neg).double()


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cls", [MSTDP, MSTDPET])
def test_per_sample_reward_equals_separate_samples(cls, reduction, kind):
    """A batch with one reward per sample ``(B,)`` gives the batch reduction of what each
    sample gives alone with its own (scalar) reward."""
    B, T = 3, 40
    if kind == "linear":
        pre, drive, rewards = random_trains(B, T, 4, 3, seed=2)
        factory = None
    else:
        pre, drive, rewards = random_trains(B, T, (1, 4, 4), (2, 4, 4), seed=2)
        factory = make_conv
    kwargs = {"lr_post": 0.05, "lr_pre": -0.04, "tau_pre": 8.0, "tau_post": 12.0}
    if cls is MSTDPET:
        kwargs["tau_eligibility"] = 15.0

    def run(pre, drive, rewards):
        conn = factory() if factory else None
        return pending_after(cls, pre, drive, rewards, reduction, conn, **kwargs)

    batch = run(pre, drive, list(rewards))
    alone = [
        run(pre[:, b : b + 1], drive[:, b : b + 1], [float(r) for r in rewards[:, b]])
        for b in range(B)
    ]
    expected = sum(alone) / (B if reduction == "mean" else 1)
    torch.testing.assert_close(batch, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert batch.abs().max() > 1e-4


@pytest.mark.parametrize("cls", [MSTDP, MSTDPET])
def test_scalar_reward_is_per_sample_reward_of_equal_values(cls):
    B, T = 2, 30
    pre, drive, rewards = random_trains(B, T, 4, 3, seed=4)
    scalar = [float(r[0]) for r in rewards]
    a = pending_after(cls, pre, drive, scalar, "mean")
    b = pending_after(cls, pre, drive, [torch.full((B,), r) for r in scalar], "mean")
    c = pending_after(cls, pre, drive, [torch.tensor(r) for r in scalar], "mean")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("cls", [MSTDP, MSTDPET])
def test_zero_reward_learns_nothing_and_reward_scales_linearly(cls):
    B, T = 2, 30
    pre, drive, _ = random_trains(B, T, 4, 3, seed=6)
    zero = pending_after(cls, pre, drive, [0.0] * T, "sum")
    assert bool((zero == 0).all())
    one = pending_after(cls, pre, drive, [1.0] * T, "sum")
    minus_three = pending_after(cls, pre, drive, [-3.0] * T, "sum")
    torch.testing.assert_close(minus_three, -3.0 * one, rtol=1e-5, atol=1e-7)


def test_mstdp_with_unit_reward_is_stdp():
    B, T = 2, 30
    pre, drive, _ = random_trains(B, T, 4, 3, seed=8)
    mstdp = pending_after(MSTDP, pre, drive, [1.0] * T, "mean")
    layer = forced_layer(Linear(4, 3, weight_range=(0, 1e-3)), 3)
    stdp = STDP()
    stdp.register_cell("syn", layer.cell("syn"))
    for t in range(T):
        layer(pre=pre[t], drive=drive[t])
        stdp()
    update = layer.connections["syn"].updater.weight
    torch.testing.assert_close(mstdp, (update.pos - update.neg).double())


@pytest.mark.parametrize("cls", [MSTDP, MSTDPET])
@pytest.mark.parametrize(
    "reward",
    [
        torch.ones(4),
        torch.ones(2),
        torch.ones(3, 1),
        torch.ones(1, 3),
        torch.ones(1),
        [1.0, 1.0],
        torch.tensor([1.0, math.nan, 1.0]),
        math.inf,
        torch.tensor(math.nan),
    ],
)
def test_bad_reward_raises_value_error(cls, reward):
    layer = forced_layer(Linear(2, 3), 3)
    trainer = cls(lr_post=0.01, lr_pre=-0.005)
    trainer.register_cell("syn", layer.cell("syn"))
    layer(pre=torch.ones(3, 2, dtype=torch.bool), drive=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reward"):
        trainer(reward)
    assert not layer.connections["syn"].updater.pending


def test_reward_of_shape_one_is_fine_for_batch_of_one():
    layer = forced_layer(Linear(2, 3), 3)
    trainer = MSTDP(lr_post=0.01, lr_pre=-0.005)
    trainer.register_cell("syn", layer.cell("syn"))
    layer(pre=torch.ones(1, 2, dtype=torch.bool), drive=torch.ones(1, 3, dtype=torch.bool))
    trainer(torch.ones(1))
    assert layer.connections["syn"].updater.pending


@pytest.mark.parametrize("cls", [MSTDP, MSTDPET])
def test_reward_is_required(cls):
    trainer = cls()
    with pytest.raises(TypeError):
        trainer()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau_eligibility": 0.0},
        {"tau_eligibility": -25.0},
        {"tau_eligibility": math.inf},
        {"tau_pre": 0.0},
        {"tau_post": -1.0},
        {"lr_post": math.nan},
        {"lr_pre": math.inf},
        {"trace_mode": "all"},
        {"batch_reduction": "avg"},
    ],
)
def test_mstdpet_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MSTDPET(**kwargs)
    if "tau_eligibility" not in kwargs:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            MSTDP(**kwargs)
    layer = forced_layer(Linear(2, 3), 3)
    trainer = MSTDPET()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        trainer.register_cell("syn", layer.cell("syn"), **kwargs)
    assert list(trainer.cells) == []


def test_mstdpet_clear_empties_eligibility_and_batch_size_change_restarts_it():
    layer = forced_layer(Linear(2, 3, weight_range=(0, 1e-3)), 3)
    trainer = MSTDPET(lr_post=0.1, lr_pre=-0.05, tau_eligibility=25.0)
    _, state = trainer.register_cell("syn", layer.cell("syn"))
    pre, drive, _ = random_trains(2, 10, 2, 3, seed=1)
    for t in range(10):
        layer(pre=pre[t], drive=drive[t])
        trainer(1.0)
    assert state.eligibility.shape == (2, 3, 2) and state.eligibility.abs().sum() > 0
    trainer.clear()
    assert state.eligibility.numel() == 0
    assert all(m.peek() is None for m in trainer.monitors)
    # after clear the eligibility starts from zero: the first step's change is dt * r * zeta/tau
    layer.reset()
    layer.connections["syn"].updater.clear()
    one_pre = torch.ones(1, 2, dtype=torch.bool)
    one_post = torch.ones(1, 3, dtype=torch.bool)
    layer(pre=one_pre, drive=one_post)
    trainer(2.0)
    # coincident first spikes with fresh traces: zeta = lr_post + lr_pre everywhere
    zeta = 0.1 - 0.05
    torch.testing.assert_close(state.eligibility, torch.full((1, 3, 2), zeta / 25.0))
    update = layer.connections["syn"].updater.weight
    torch.testing.assert_close(update.pos - update.neg, torch.full((3, 2), 2.0 * zeta / 25.0))
