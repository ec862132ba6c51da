"""Encoders: turn firing rates (Hz) into spike trains of ``steps`` time steps of ``dt`` ms.

Every encoder maps rates ``(B, *shape)`` to spikes ``(steps, B, *shape)`` (bool). A sample's
spike train depends only on ``(seed, sample index, epoch)``, never on which batch or process the
sample lands in, so runs with different batch sizes or process counts see identical inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from celltrain.utils.checks import non_negative, positive

_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """SplitMix64-style mix of integers into one 63-bit seed."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state * 0xBF58476D1CE4E5B9) & _MASK64
        state ^= state >> 31
        state = (state * 0x94D049BB133111EB) & _MASK64
        state ^= state >> 29
    return state & ((1 << 63) - 1)


class Encoder(nn.Module):
    """Base class of rate encoders.

    Args:
        steps: number of time steps per sample (>= 1).
        dt: time step (ms, > 0); must equal the network's ``dt``.
        max_rate: rates above this (Hz) are rejected, since they cannot be represented at
            this ``dt`` (default ``1000 / dt``: at most one spike per step; a larger
            ``max_rate`` does not raise that limit).

    Example::

        >>> encoder = RegularEncoder(steps=10)  # an Encoder: rates (Hz) -> (T, B, ...) spikes
        >>> encoder(torch.tensor([[200.0]]), torch.arange(1)).shape
        torch.Size([10, 1, 1])
    """

    def __init__(self, steps: int, dt: float = 1.0, max_rate: float | None = None) -> None:
        super().__init__()
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        self.steps = steps
        self.dt = positive("dt", dt)
        self.max_rate = None if max_rate is None else positive("max_rate", max_rate)

    def check_rates(self, rates: torch.Tensor) -> torch.Tensor:
        """Validate rates (Hz): finite, >= 0 and at most one spike per step on average."""
        if not isinstance(rates, torch.Tensor) or not rates.is_floating_point():
            raise TypeError(f"rates must be a floating point tensor (Hz), got {rates!r:.80}")
        if rates.dim() < 2:
            raise ValueError(f"rates must have shape (batch, *shape), got {tuple(rates.shape)}")
        if torch.isnan(rates).any():
            raise ValueError("rates must not contain NaN")
        low, high = float(rates.min()), float(rates.max())
        if low < 0:
            raise ValueError(f"rates must be >= 0 Hz, got a minimum of {low}")
        limit = 1000.0 / self.dt  # a max_rate above it would make p > 1: silently saturated
        if self.max_rate is not None:
            limit = min(limit, self.max_rate)
        if high > limit:
            raise ValueError(
                f"rates must be <= {limit} Hz (one spike per step of dt={self.dt} ms), "
                f"got a maximum of {high}"
            )
        return rates

    def forward(
        self, rates: torch.Tensor, index: torch.Tensor | None = None, epoch: int = 0
    ) -> torch.Tensor:
        """Encode a batch.

        Args:
            rates: firing rates in Hz, ``(B, *shape)``.
            index: the samples' data set indices ``(B,)`` (int); default ``arange(B)``.
            epoch: the epoch (int >= 0); each epoch draws new spike trains.

        Returns:
            spikes ``(steps, B, *shape)`` (bool).
        """
        rates = self.check_rates(rates)
        if index is None:
            index = torch.arange(rates.shape[0])
        index = torch.as_tensor(index)
        if index.shape != (rates.shape[0],) or index.is_floating_point():
            raise ValueError(
                f"index must be an integer tensor of shape ({rates.shape[0]},), "
                f"got {tuple(index.shape)} {index.dtype}"
            )
        non_negative("epoch", epoch)
        with torch.no_grad():
            return self.encode(rates, index, int(epoch))

    def encode(self, rates: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError


class PoissonEncoder(Encoder):
    """Poisson (Bernoulli per step) spike trains: each step spikes with ``p = rate * dt / 1000``.

    Each sample's random numbers come from a generator seeded with ``(seed, index, epoch)``.

    Args:
        steps, dt, max_rate: as for :class:`Encoder`.
        seed: base seed (int).

    Example::

        >>> encoder = PoissonEncoder(steps=1000, dt=1.0)
        >>> spikes = encoder(torch.tensor([[0.0, 100.0]]), torch.arange(1))
        >>> spikes.shape, bool(spikes[:, 0, 0].any()), 70 < int(spikes[:, 0, 1].sum()) < 130
        (torch.Size([1000, 1, 2]), False, True)
    """

    def __init__(
        self, steps: int, dt: float = 1.0, max_rate: float | None = None, seed: int = 0
    ) -> None:
        super().__init__(steps, dt, max_rate)
        self.seed = int(seed)

    def encode(self, rates: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        probability = rates * (self.dt / 1000.0)
        device = rates.device
        generator = torch.Generator(device=device)
        noise = torch.empty(
            (rates.shape[0], self.steps, *rates.shape[1:]), dtype=rates.dtype, device=device
        )
        for row, sample in enumerate(index.tolist()):
            generator.manual_seed(_mix(self.seed, sample, epoch))
            noise[row].uniform_(generator=generator)
        # time-major and contiguous (Layer.run and the monitors read whole steps at once),
        # compared straight into that layout
        spikes = torch.empty((self.steps, *rates.shape), dtype=torch.bool, device=device)
        return torch.lt(noise.transpose(0, 1), probability.unsqueeze(0), out=spikes)


class RegularEncoder(Encoder):
    """Deterministic regular spike trains: step ``t`` (1-based) spikes when
    ``floor(t * p) > floor((t - 1) * p)`` with ``p = rate * dt / 1000``, i.e. evenly spaced
    spikes, the first after ``1 / p`` steps. Independent of index, epoch and batch.

    Example::

        >>> spikes = RegularEncoder(steps=10)(torch.tensor([[200.0]]), torch.arange(1))
        >>> spikes[:, 0, 0].int().tolist()  # 200 Hz at 1 ms: every fifth step
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    """

    def encode(self, rates: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        # float64 before scaling: in float32, 1000 Hz * 1e-4 is 0.099999998 and a step is lost.
        probability = rates.to(torch.float64) * (self.dt / 1000.0)
        steps = torch.arange(self.steps + 1, dtype=torch.float64, device=rates.device)
        counts = torch.floor(steps.view(-1, *([1] * rates.dim())) * probability + 1e-9)
        return counts[1:] > counts[:-1]
