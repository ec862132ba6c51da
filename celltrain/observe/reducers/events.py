"""Reducers of events (spikes): :class:`Trace`, :class:`Count`, :class:`TimeSince`."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from celltrain.observe.reducers.base import EventFold, float_dtype
from celltrain.utils.checks import finite, positive
from celltrain.utils.filters import (
    decay_fraction,
    decay_powers,
    decayed,
    exponential_filter,
    state_dtype,
)
from celltrain.utils.spikes import spikes_as


class Trace(EventFold):
    """Exponentially decaying trace of events (spikes), time constant ``tau`` ms.

    With ``event = (observation == target)`` and ``d = exp(-dt / tau)``, each step folds

    - ``mode="cumulative"``: ``x <- d * x + amplitude * event``;
    - ``mode="nearest"``: ``x <- amplitude`` where ``event``, else ``d * x``.

    The trace starts at zero; ``peek()`` has the observation's shape ``(*S)`` in floating point
    (see the module docstring for the dtype).

    Args:
        tau: time constant in ms (finite, > 0).
        amplitude: added (cumulative) or set (nearest) on each event (finite).
        target: observed value that counts as an event (``True`` for bool spikes).
        mode: ``"cumulative"`` or ``"nearest"``.

    Raises:
        ValueError: ``tau`` is not finite and positive, ``amplitude`` not finite, or ``mode``
            unknown.
        TypeError: ``tau`` or ``amplitude`` is not a real number.

    Example::

        >>> trace = Trace(tau=10.0)
        >>> trace.run(torch.tensor([[True], [False], [True]]), dt=1.0)
        >>> trace.peek()  # 0.9048**2 + 1
        tensor([1.8187])
    """

    needs_dt = True

    def __init__(
        self,
        tau: float,
        amplitude: float = 1.0,
        target: Any = True,
        mode: Literal["cumulative", "nearest"] = "cumulative",
    ) -> None:
        super().__init__(target)
        self.tau = positive("tau", tau)
        self.amplitude = finite("amplitude", amplitude)
        if mode not in ("cumulative", "nearest"):
            raise ValueError(f"mode must be 'cumulative' or 'nearest', got {mode!r}")
        self.mode = mode

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        event = self.event(observation)
        fraction = decay_fraction(dt, self.tau)
        value = decayed(value.to(state_dtype(value.dtype, fraction)), fraction)
        if self.mode == "nearest":
            return torch.where(event, self.amplitude, value)
        return value.add_(event, alpha=self.amplitude)  # value is a fresh temporary

    def fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        # closed forms instead of a loop: the final value now, the per-step series on demand
        start = start.to(state_dtype(start.dtype, decay_fraction(dt, self.tau)))
        decay = math.exp(-dt / self.tau)
        events = self.event(observations)
        steps = events.shape[0]
        dtype = start.dtype
        if self.mode == "nearest":
            series = self._nearest_series(start, events, decay)
            return series[-1].clone(), series
        # x[T] = d^T x[0] + amplitude * sum_s d^(T-s) event[s]
        weights = decay_powers(steps, decay, dtype, start.device, first=0).flip(0)
        flat = events.reshape(steps, -1)
        final = torch.zeros(flat.shape[1], dtype=dtype, device=start.device)
        # in chunks of about a million events: converting a large window to floats at once
        # costs more in fresh memory than in arithmetic
        chunk = max(1, (1 << 20) // max(1, flat.shape[1]))
        for first in range(0, steps, chunk):
            part = spikes_as(flat[first : first + chunk], dtype)
            final.addmv_(part.t(), weights[first : first + chunk])
        final = final.view(start.shape).mul_(self.amplitude)
        final.add_(start, alpha=decay**steps)
        amplitude = self.amplitude
        if events is observations:
            events = events.clone()  # the series is formed later: not from edited inputs

        def series() -> Tensor:
            return exponential_filter(events.to(dtype) * amplitude, decay, start)

        return final, series

    def _nearest_series(self, start: Tensor, events: Tensor, decay: float) -> Tensor:
        steps = events.shape[0]
        view = (-1,) + (1,) * (events.dim() - 1)
        index = torch.arange(1, steps + 1, device=events.device).view(view)
        last = torch.where(events, index, 0).cummax(0).values  # step of the latest event, 0: none
        since = (index - last).to(start.dtype)
        base = torch.tensor(decay, dtype=start.dtype, device=start.device)
        from_event = torch.pow(base, since).mul_(self.amplitude)  # 0 ** 0 = 1
        carried = torch.pow(base, index.to(start.dtype)) * start
        return torch.where(last > 0, from_event, carried)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, amplitude={self.amplitude}, {super().extra_repr()}, "
            f"mode={self.mode!r}"
        )


class Count(EventFold):
    """Number of events (``observation == target``) per element, as a ``torch.int64`` tensor.

    ``peek()`` has the observation's shape ``(*S)``; divide by :attr:`steps` (or by the
    observed time ``steps * dt``) for a rate.

    Args:
        target: observed value that counts as an event (``True`` for bool spikes).

    Example::

        >>> count = Count()
        >>> count.run(torch.tensor([[True, False], [True, True]]))
        >>> count.peek()
        tensor([2, 1])
    """

    def initial(self, observation: Tensor) -> Tensor:
        return torch.zeros(observation.shape, dtype=torch.int64, device=observation.device)

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return value + self.event(observation)

    def fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        events = self.event(observations)
        if events is observations:
            events = events.clone()  # the series is formed later: not from edited inputs
        return start + events.sum(0), lambda: start + events.cumsum(0)


class TimeSince(EventFold):
    """Time in ms since the last event (``observation == target``) of each element.

    ``+inf`` until the element's first event, ``0`` at the step of an event, then growing by
    ``dt`` each step. ``peek()`` has the observation's shape ``(*S)`` in floating point.

    Args:
        target: observed value that counts as an event (``True`` for bool spikes).

    Example::

        >>> since = TimeSince()
        >>> since.run(torch.tensor([[True], [False], [False]]), dt=0.5)
        >>> since.peek()
        tensor([1.])
    """

    needs_dt = True

    def initial(self, observation: Tensor) -> Tensor:
        return torch.full_like(observation, math.inf, dtype=float_dtype(observation))

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return torch.where(self.event(observation), 0.0, value + dt)
