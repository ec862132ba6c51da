"""Synapses: turn presynaptic spikes into presynaptic currents, before connection weights.

A synapse maps spikes ``(B, *shape)`` (bool) to a current per presynaptic neuron
``(B, *shape)`` (floating point, nA per unit weight) and keeps the last presynaptic ``spike``
so learning rules can read it through a monitor (``connection.synapse.spike``).
"""

from __future__ import annotations

import math

import torch

from celltrain.neural.checks import positive
from celltrain.neural.filters import exponential_filter
from celltrain.neural.gradient import gradient_free
from celltrain.neural.spikes import spikes_as
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
        self.prepare("spike", spike)
        return self.advance(spike)

    def prepare(self, name: str, spike: torch.Tensor) -> None:
        """Check one step's spikes ``(B, *shape)`` and create the state at rest if needed.

        Raises:
            TypeError: ``spike`` is not bool.
            ValueError: its shape differs from the state's (without :meth:`reset`).
        """
        if spike.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor, got dtype {spike.dtype}")
        if self.needs_state(spike.shape[0]):
            self.current = torch.zeros(spike.shape, dtype=self.current.dtype, device=spike.device)
        elif self.current.shape != spike.shape:
            raise ValueError(
                f"{name} must have shape {tuple(self.current.shape)} like the previous step, "
                f"got {tuple(spike.shape)}"
            )

    def advance(self, spike: torch.Tensor) -> torch.Tensor:
        """One step without argument checks (the state must exist, see :meth:`prepare`):
        the inner loop of :meth:`~celltrain.neural.Layer.run`."""
        state = self._buffers
        state["spike"] = spike
        current = self.step(spikes_as(spike, state["current"].dtype))
        state["current"] = current
        return current

    @gradient_free
    def run(self, spikes: torch.Tensor) -> torch.Tensor:
        """Advance ``T`` steps; same as ``T`` calls of :meth:`forward`.

        Args:
            spikes: presynaptic spikes ``(T, B, *shape)``, bool.

        Returns:
            the current of each step ``(T, B, *shape)``; the state is that after the last step.
        """
        if spikes.dim() < 2 or spikes.shape[0] < 1:
            raise ValueError(
                f"spikes must be (T, B, *shape) with T >= 1 steps, got shape {tuple(spikes.shape)}"
            )
        self.prepare("spikes[0]", spikes[0])
        currents = self.window(spikes_as(spikes, self.current.dtype))
        self.spike = spikes[-1]
        self.current = currents[-1]
        return currents

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        """Currents of ``T`` steps from the spikes as 0/1 floats ``(T, B, *shape)``, starting
        from the state; by default one :meth:`step` per step."""
        currents = []
        for spike in spikes:
            self.current = self.step(spike)
            currents.append(self.current)
        return torch.stack(currents)

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        """Return the current of this step from the spikes (as 0/1 floats)."""
        raise NotImplementedError


class DeltaCurrent(Synapse):
    """Each spike gives a current pulse lasting one step: ``current = amplitude * spike``."""

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return spike * self.amplitude if self.amplitude != 1.0 else spike

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.step(spikes)


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

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        decay = math.exp(-self.dt / self.tau)
        return exponential_filter(self.amplitude * spikes, decay, self.current)
