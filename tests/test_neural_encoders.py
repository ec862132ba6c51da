"""Encoders: Poisson statistics and reproducibility, regular trains by exact arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from celltrain.neural import PoissonEncoder, RegularEncoder


@pytest.mark.parametrize("dt", [0.5, 1.0])
def test_poisson_rates_match_binomial_statistics(dt):
    steps = 4000
    g = torch.Generator().manual_seed(3)
    limit = 1000.0 / dt
    rates = torch.rand(2, 3, 50, generator=g) * limit
    rates[0, 0, :5] = torch.tensor([0.0, limit, 1.0, limit - 1.0, 0.5 * limit])
    spikes = PoissonEncoder(steps, dt=dt, seed=11)(rates)
    assert spikes.shape == (steps, 2, 3, 50) and spikes.dtype == torch.bool
    counts = spikes.sum(0).double()
    p = (rates.double() * dt / 1000.0).clamp(0.0, 1.0)
    mean, var = steps * p, steps * p * (1 - p)
    # exact where p is 0 or 1
    assert torch.equal(counts[var == 0], mean[var == 0])
    z = (counts - mean)[var > 0] / var[var > 0].sqrt()
    assert z.abs().max() < 5.5  # 300 cells: P(any |z| > 5.5) ~ 1e-5
    # the z-scores are standard normal as a whole: their mean and variance
    assert abs(z.mean()) < 5 / math.sqrt(z.numel())
    assert 0.7 < z.var() < 1.3


def test_poisson_steps_are_independent_across_time_and_cells():
    rates = torch.full((1, 200), 200.0)
    spikes = PoissonEncoder(500, seed=2)(rates)[:, 0].double()
    # lag-1 autocorrelation of each cell's train and correlation between cells ~ 0
    x = spikes - spikes.mean(0)
    lag1 = (x[1:] * x[:-1]).mean(0) / x.var(0)
    assert lag1.abs().mean() < 0.06
    corr = torch.corrcoef(spikes.t())
    off = corr[~torch.eye(200, dtype=torch.bool)]
    assert off.abs().mean() < 0.06


def test_poisson_sample_train_depends_only_on_seed_index_epoch():
    g = torch.Generator().manual_seed(0)
    enc = PoissonEncoder(60, seed=5)
    sample = torch.rand(1, 4, 4, generator=g) * 600.0
    alone = enc(sample, index=torch.tensor([42]), epoch=3)
    for position in (0, 7, 15):
        batch = torch.rand(16, 4, 4, generator=g) * 600.0
        batch[position] = sample[0]
        index = torch.randperm(1000, generator=g)[:16]
        index[index == 42] = 999
        index[position] = 42
        spikes = enc(batch, index=index, epoch=3)
        assert spikes.shape == (60, 16, 4, 4)
        assert torch.equal(spikes[:, position], alone[:, 0])
    # another epoch, another index or another seed gives another train
    assert not torch.equal(enc(sample, index=torch.tensor([42]), epoch=4), alone)
    assert not torch.equal(enc(sample, index=torch.tensor([43]), epoch=3), alone)
    assert not torch.equal(PoissonEncoder(60, seed=6)(sample, torch.tensor([42]), 3), alone)
    # and the same call again is the same train (no hidden global RNG state)
    torch.manual_seed(123)
    assert torch.equal(enc(sample, index=torch.tensor([42]), epoch=3), alone)


def test_poisson_default_index_is_position():
    enc = PoissonEncoder(30, seed=1)
    rates = torch.full((3, 5), 300.0)
    assert torch.equal(enc(rates), enc(rates, index=torch.arange(3)))


@pytest.mark.parametrize("dt", ["0.1", "0.25", "0.5", "1.0", "2.0"])
@pytest.mark.parametrize("steps", [7, 50, 333])
def test_regular_counts_and_spacing_by_exact_arithmetic(dt, steps):
    dt_exact = Fraction(dt)
    limit = int(1000 / dt_exact)
    rates = list(range(0, limit + 1, max(1, limit // 97))) + [limit]
    spikes = RegularEncoder(steps, dt=float(dt))(torch.tensor([rates], dtype=torch.float32))
    assert spikes.shape == (steps, 1, len(rates))
    for i, rate in enumerate(rates):
        p = Fraction(rate) * dt_exact / 1000
        count = math.floor(steps * p)
        times = (spikes[:, 0, i].nonzero().flatten() + 1).tolist()  # 1-based steps
        assert len(times) == count, (rate, len(times), count)
        # the k-th spike at the first step t with t * p >= k: evenly spaced
        assert times == [math.ceil(k / p) for k in range(1, count + 1)]
        gaps = {b - a for a, b in zip(times, times[1:])}
        assert gaps <= {math.floor(1 / p), math.ceil(1 / p)} if p else not gaps


def test_regular_is_independent_of_index_epoch_and_batch():
    enc = RegularEncoder(40)
    rates = torch.tensor([[100.0, 250.0], [0.0, 1000.0]])
    first = enc(rates)
    assert torch.equal(enc(rates, index=torch.tensor([5, 9]), epoch=7), first)
    assert torch.equal(enc(rates[1:]), first[:, 1:])
    assert first[:, 1, 1].all() and not first[:, 1, 0].any()


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", [PoissonEncoder, RegularEncoder])
def test_bad_rates_raise(kind):
    enc = kind(10, dt=0.5)
    with pytest.raises(ValueError, match="rates must not contain NaN"):
        enc(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="rates must be >= 0 Hz, got a minimum of -3.0"):
        enc(torch.tensor([[1.0, -3.0]]))
    with pytest.raises(ValueError, match=r"rates must be <= 2000.0 Hz .*dt=0.5.*maximum of 2500"):
        enc(torch.tensor([[2500.0, 3.0]]))
    with pytest.raises(ValueError, match="rates must be <= 2000.0 Hz.*maximum of inf"):
        enc(torch.tensor([[float("inf")]]))
    with pytest.raises(TypeError, match="rates must be a floating point tensor"):
        enc(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"rates must have shape \(batch, \*shape\), got \(3,\)"):
        enc(torch.tensor([1.0, 2.0, 3.0]))
    enc(torch.tensor([[2000.0, 0.0]]))  # exactly one spike per step is fine


def test_max_rate_limits_and_never_exceeds_one_spike_per_step():
    with pytest.raises(ValueError, match="rates must be <= 100.0 Hz.*maximum of 150"):
        PoissonEncoder(5, max_rate=100.0)(torch.tensor([[150.0]]))
    with pytest.raises(ValueError, match="rates must be <= 1000.0 Hz.*maximum of 1500"):
        PoissonEncoder(5, max_rate=5000.0)(torch.tensor([[1500.0]]))


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_non_positive_dt_raises(value):
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
        PoissonEncoder(10, dt=value)
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
        RegularEncoder(10, dt=value)


def test_bad_steps_index_epoch_raise():
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        PoissonEncoder(0)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 2.5"):
        RegularEncoder(2.5)
    enc = PoissonEncoder(5)
    with pytest.raises(ValueError, match=r"index must be an integer tensor of shape \(2,\)"):
        enc(torch.zeros(2, 3), index=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"index must be an integer tensor.*float32"):
        enc(torch.zeros(2, 3), index=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="epoch must be a finite number >= 0, got -1"):
        enc(torch.zeros(2, 3), epoch=-1)
