"""Quadratic integrate-and-fire dynamics as a pure step function."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class QIFConstants(NamedTuple):
    """The constants of one QIF step (mV, ms, MOhm; ``sharpness`` in 1/mV).

    Example::

        >>> k = QIFConstants(dt=0.1, tau_membrane=10.0, sharpness=0.2, rest=-65.0,
        ...                  critical=-50.0, resistance=1.0, peak=0.0, reset=-70.0,
        ...                  refractory_period=0.0)
        >>> spike, voltage, _ = qif_step(torch.zeros(1), torch.tensor([-65.0]), torch.zeros(1), k)
        >>> spike, voltage  # rest is a fixed point
        (tensor([False]), tensor([-65.]))
    """

    dt: float
    tau_membrane: float
    sharpness: float
    rest: float
    critical: float
    resistance: float
    peak: float
    reset: float
    refractory_period: float


def qif_step(
    current: Tensor, voltage: Tensor, refractory: Tensor, k: QIFConstants
) -> tuple[Tensor, Tensor, Tensor]:
    """One forward-Euler step of ``tau dv/dt = sharpness (v - rest)(v - critical) + R I``; at
    ``v >= peak``: spike and ``v <- reset``; refractory neurons keep their voltage. Returns
    ``(spike, voltage, refractory)``, each ``(B, *shape)``."""
    held = refractory > 1e-3 * k.dt
    drive = k.sharpness * (voltage - k.rest) * (voltage - k.critical) + k.resistance * current
    integrated = (voltage + (k.dt / k.tau_membrane) * drive).where(~held, voltage)
    spike = (integrated >= k.peak) & ~held
    refractory = (refractory - k.dt).clamp_min(0.0).masked_fill(spike, k.refractory_period)
    return spike, integrated.masked_fill(spike, k.reset), refractory
