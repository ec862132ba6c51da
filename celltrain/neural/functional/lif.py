"""Leaky integrate-and-fire dynamics as pure step functions: state and constants in, spikes and
new state out. :class:`~celltrain.neural.LIF` and :class:`~celltrain.neural.ALIF` hold the
state and call these."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from celltrain.utils.filters import decay_fraction
from celltrain.utils.spikes import spike_values


class LIFConstants(NamedTuple):
    """The constants of one LIF step, each in the form the step uses it: 0-dim tensors of the
    state's dtype and device for tensor operands (a Python number would be wrapped into a new
    tensor by every operation), plain floats for the scalar arguments ``alpha`` and ``weight``.

    Attributes:
        decay_fraction: ``1 - exp(-dt / tau_membrane)``, the lerp weight towards the drive.
        resistance: membrane resistance (MOhm), the drive's ``alpha``.
        rest: resting potential (mV), 0-dim.
        reset: potential after a spike (mV), 0-dim.
        threshold: firing threshold (mV), 0-dim.
        refractory_period: time held at reset after a spike (ms), 0-dim.
        dt: step length (ms), 0-dim.
        held_above: refractory time left above which a neuron is held (``1e-3 * dt`` ms: a
            smaller remainder is rounding error of the countdown), 0-dim.
        zero: 0, 0-dim.

    Example::

        >>> c = lif_constants(dt=1.0, tau_membrane=20.0, rest_voltage=-65.0, reset_voltage=-65.0,
        ...                   threshold_voltage=-52.0, refractory_period=2.0, resistance=1.0,
        ...                   like=torch.zeros(1))
        >>> round(c.decay_fraction, 5), c.threshold
        (0.04877, tensor(-52.))
    """

    decay_fraction: float
    resistance: float
    rest: Tensor
    reset: Tensor
    threshold: Tensor
    refractory_period: Tensor
    dt: Tensor
    held_above: Tensor
    zero: Tensor


def lif_constants(
    *,
    dt: float,
    tau_membrane: float,
    rest_voltage: float,
    reset_voltage: float,
    threshold_voltage: float,
    refractory_period: float,
    resistance: float,
    like: Tensor,
) -> LIFConstants:
    """The :class:`LIFConstants` of these parameters (ms, mV, MOhm) in ``like``'s dtype and
    device."""

    def scalar(value: float) -> Tensor:
        return torch.tensor(value, dtype=like.dtype, device=like.device)

    return LIFConstants(
        decay_fraction=decay_fraction(dt, tau_membrane),
        resistance=resistance,
        rest=scalar(rest_voltage),
        reset=scalar(reset_voltage),
        threshold=scalar(threshold_voltage),
        refractory_period=scalar(refractory_period),
        dt=scalar(dt),
        held_above=scalar(1e-3 * dt),
        zero=scalar(0.0),
    )


def lif_step(
    current: Tensor,
    voltage: Tensor,
    refractory: Tensor,
    c: LIFConstants,
    threshold: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step of LIF neurons, ``(B, *shape)`` each: returns ``(spike, voltage, refractory)``.

    ``v <- v + k (rest + R I - v)`` with ``k = 1 - exp(-dt / tau)`` (exact for a current held
    over the step); where ``v`` reaches the threshold the neuron spikes and is set to ``reset``;
    a refractory neuron (``refractory > held_above``) is held at reset and ignores its input,
    and ``refractory`` counts down by ``dt``, restarting at ``refractory_period`` after a spike.

    Args:
        current: input current (nA).
        voltage: membrane potential before the step (mV).
        refractory: refractory time left (ms).
        c: the step's constants.
        threshold: the threshold (mV, broadcast to the state) instead of ``c.threshold``.

    Returns:
        the spikes (bool) and the new voltage and refractory time (new tensors).
    """
    held = refractory > c.held_above
    target = torch.add(c.rest, current, alpha=c.resistance)  # where the current holds v
    voltage = torch.lerp(voltage, target, c.decay_fraction, out=target)
    above = torch.ge(voltage, c.threshold if threshold is None else threshold)
    spike = torch.gt(above, held)  # for bools, a > b is "a and not b"
    # a held neuron sits at reset (set there by its spike, not integrated while held), so
    # "above or held" is exactly where the voltage is reset
    voltage = voltage.masked_fill_(above.logical_or_(held), c.reset)
    refractory = (refractory - c.dt).clamp_min_(c.zero).masked_fill_(spike, c.refractory_period)
    return spike, voltage, refractory


def alif_step(
    current: Tensor,
    voltage: Tensor,
    refractory: Tensor,
    adaptation: Tensor,
    c: LIFConstants,
    theta_fraction: float,
    theta_plus: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step of adaptive-threshold LIF neurons: returns ``(spike, voltage, refractory,
    adaptation)``.

    The adaptation decays first (``a <- a - theta_fraction * a``), the voltage is compared with
    ``threshold + a``, then each spike adds ``theta_plus`` (mV) to its neuron's adaptation.

    Args:
        current, voltage, refractory, c: as for :func:`lif_step`.
        adaptation: threshold adaptation before the step (mV), any float dtype.
        theta_fraction: ``1 - exp(-dt / tau_theta)``.
        theta_plus: increase per spike (mV).
    """
    adaptation = torch.add(adaptation, adaptation, alpha=-theta_fraction)
    spike, voltage, refractory = lif_step(
        current, voltage, refractory, c, threshold=adaptation + c.threshold
    )
    return spike, voltage, refractory, adaptation.add_(spike_values(spike), alpha=theta_plus)
