"""Izhikevich (2003) dynamics as a pure step function."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class IzhikevichConstants(NamedTuple):
    """The constants of one Izhikevich step (floats: the step is forward Euler on few
    tensors).

    Attributes:
        a, b, c, d: the model's parameters (recovery time scale 1/ms, sensitivity, reset mV,
            recovery increment).
        resistance: input resistance (MOhm).
        peak: spike cut-off (mV).
        refractory_period: time held at reset after a spike (ms).
        dt: step length (ms).

    Example::

        >>> k = IzhikevichConstants(a=0.02, b=0.2, c=-65.0, d=8.0, resistance=1.0, peak=30.0,
        ...                         refractory_period=0.0, dt=1.0)
        >>> spike, *_ = izhikevich_step(torch.tensor([50.0]), torch.tensor([29.0]),
        ...                             torch.tensor([0.0]), torch.tensor([0.0]), k)
        >>> spike
        tensor([True])
    """

    a: float
    b: float
    c: float
    d: float
    resistance: float
    peak: float
    refractory_period: float
    dt: float


def izhikevich_step(
    current: Tensor,
    voltage: Tensor,
    recovery: Tensor,
    refractory: Tensor,
    k: IzhikevichConstants,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One forward-Euler step of ``dv/dt = 0.04 v^2 + 5 v + 140 - u + R I``,
    ``du/dt = a (b v - u)``; at ``v >= peak``: spike, ``v <- c``, ``u <- u + d``. Refractory
    neurons (time left above ``1e-3 dt``) keep their voltage. Returns ``(spike, voltage,
    recovery, refractory)``, each ``(B, *shape)``."""
    held = refractory > 1e-3 * k.dt
    dv = 0.04 * voltage * voltage + 5.0 * voltage + 140.0 - recovery + k.resistance * current
    integrated = voltage + k.dt * dv
    integrated = integrated.where(~held, voltage)
    recovery = recovery + k.dt * k.a * (k.b * voltage - recovery)
    spike = (integrated >= k.peak) & ~held
    voltage = integrated.masked_fill(spike, k.c)
    recovery = recovery + spike * k.d
    refractory = (refractory - k.dt).clamp_min(0.0).masked_fill(spike, k.refractory_period)
    return spike, voltage, recovery, refractory
