"""Synapses: turn presynaptic spikes into presynaptic currents, before connection weights.

A synapse maps spikes ``(B, *shape)`` (bool) to a current per presynaptic neuron
``(B, *shape)`` (floating point, nA per unit weight) and keeps the last presynaptic ``spike``
so learning rules can read it through a monitor (``connection.synapse.spike``).
"""

from __future__ import annotations

import math

import torch

from celltrain.neural.checks import positive
from celltrain.neural.gradient import gradient_free
from celltrain.neural.stepped import Stepped


class Synapse(Stepped):
    """Base class of synapses. State: ``spike`` (bool) and ``current`` (floating point).

    Args:
        amplitude: current per spike and unit weight (nA, > 0).
    """

    def __init__(self, amplitude: float = 1.0) -> None:
        super().__init__()
        self.amplitude = positive("amplitude", amplitude)
        self.register_state("spike", torch.bool)
        self.register_state("current", torch.get_default_dtype())

    @gradient_free
    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Advance one step with presynaptic ``spike`` ``(B, *shape)`` bool; return the current."""
        if spike.dtype != torch.bool:
            raise TypeError(f"spike must be a bool tensor, got dtype {spike.dtype}")
        if self.needs_state(spike.shape[0]):
            self.current = torch.zeros(spike.shape, dtype=self.current.dtype, device=spike.device)
        elif self.current.shape != spike.shape:
            raise ValueError(
                f"spike must have shape {tuple(self.current.shape)} like the previous step, "
                f"got {tuple(spike.shape)}"
            )
        self.spike = spike
        self.current = self.step(spike.to(self.current.dtype))
        return self.current

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        """Return the current of this step from the spikes (as 0/1 floats)."""
        raise NotImplementedError


class DeltaCurrent(Synapse):
    """Each spike gives a current pulse lasting one step: ``current = amplitude * spike``."""

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return spike * self.amplitude if self.amplitude != 1.0 else spike


class ExponentialCurrent(Synapse):
    """Each spike adds ``amplitude`` to a current that decays with ``tau`` (ms):
    ``current <- current * exp(-dt/tau) + amplitude * spike``.

    Args:
        tau: decay time constant (ms, > 0).
        amplitude: current jump per spike and unit weight (nA, > 0).
    """

    def __init__(self, tau: float = 5.0, amplitude: float = 1.0) -> None:
        super().__init__(amplitude)
        self.tau = positive("tau", tau)

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return self.current * math.exp(-self.dt / self.tau) + self.amplitude * spike
