"""Synapses: turn presynaptic spikes into presynaptic currents, before connection weights.

A synapse maps spikes ``(B, *shape)`` (bool) to a current per presynaptic neuron
``(B, *shape)`` (floating point, nA per unit weight) and keeps the last presynaptic ``spike``
so learning rules can read it through a monitor (``connection.synapse.spike``).
"""

from __future__ import annotations

import math

import torch

from celltrain.neural.neurons import LIF
from celltrain.neural.stepped import Stepped
from celltrain.utils.checks import positive
from celltrain.utils.filters import decay_fraction, decayed, exponential_filter
from celltrain.utils.gradient import gradient_free
from celltrain.utils.spikes import spikes_as


class Synapse(Stepped):
    """Base class of synapses. State: ``spike`` (bool) and ``current`` (floating point).

    Args:
        amplitude: current per spike and unit weight (nA, > 0).

    Example::

        >>> synapse = ExponentialCurrent(tau=5.0)  # a Synapse: spikes -> current
        >>> synapse(torch.tensor([[True]])), synapse(torch.tensor([[False]]))
        (tensor([[1.]]), tensor([[0.8187]]))
    """

    def __init__(self, amplitude: float = 1.0) -> None:
        super().__init__()
        self.amplitude = positive("amplitude", amplitude)
        self.register_state("spike", torch.bool)
        self.register_state("current", torch.get_default_dtype())

    def check_target(self, name: str, neuron: torch.nn.Module) -> None:
        """Called by :class:`~celltrain.neural.Layer` when it wires this synapse's connection
        to ``neuron`` (named ``name``); a synapse that is exact only for a kind of target
        checks it here. Nothing by default.

        Raises:
            ValueError: the target does not fit the synapse.
        """

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
        current = self.step(spikes_as(spike, self.current.dtype))
        self.set_state(spike=spike, current=current)
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
    """Each spike gives a current pulse lasting one step: ``current = amplitude * spike``.

    Through an :class:`~celltrain.neural.LIF` target a pulse of ``w`` nA (weight times
    amplitude) moves the voltage by ``resistance * w * (1 - exp(-dt / tau_membrane))`` mV: the
    charge of a spike is ``w * dt``, so the effect of one spike scales with ``dt`` (0.146,
    0.015 and 0.0015 mV for 3 nA, R = 1 MOhm, tau 20 ms at dt 1, 0.1 and 0.01 ms). To port a
    model whose spikes make the voltage jump (``v += w``), use :class:`VoltageJump`.

    Example::

        >>> DeltaCurrent(amplitude=2.0)(torch.tensor([[True, False]]))
        tensor([[2., 0.]])
    """

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return spike * self.amplitude if self.amplitude != 1.0 else spike

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.step(spikes)


def _membrane_target(synapse: Synapse, name: str, neuron: torch.nn.Module) -> None:
    """Check that ``neuron`` is an LIF-type target with the synapse's membrane parameters."""
    kind = type(synapse).__name__
    if not isinstance(neuron, LIF):
        raise ValueError(
            f"{kind} with tau_membrane integrates a linear (LIF / ALIF) membrane exactly; "
            f"target {name!r} is a {type(neuron).__name__}"
        )
    for attr in ("tau_membrane", "resistance"):
        mine = getattr(synapse, attr, None)
        if mine is not None and mine != getattr(neuron, attr):
            raise ValueError(
                f"{kind} was made for {attr}={mine} but target {name!r} has "
                f"{attr}={getattr(neuron, attr)}"
            )


class ExponentialCurrent(Synapse):
    """Each spike adds ``amplitude`` to a current that decays with ``tau`` (ms):
    ``current <- current * exp(-dt/tau) + amplitude * spike`` (computed as
    ``current - k * current`` with ``k = -expm1(-dt/tau)``, accurate in float32).

    A spike enters the current at full amplitude in its own step. By default the current of a
    step is delivered as it is, held constant over the step, so a spike delivers
    ``amplitude * dt / (1 - exp(-dt/tau))`` of charge instead of the exact ``amplitude * tau``:
    a postsynaptic potential through an LIF is biased upwards to first order in ``dt``
    (10.4% at dt = 1 ms and tau = 5 ms, 1% at dt = 0.1 ms).

    With ``tau_membrane`` given, the synapse integrates the coupled linear system
    ``tau_membrane dv/dt = -(v - rest) + resistance * I``, ``tau dI/dt = -I`` exactly (the
    exact-integration scheme of Rotter & Diesmann 1999): it delivers, for each step, the
    constant current that moves an LIF membrane of that time constant exactly as the
    exponentially decaying current does over the step,
    ``I * tau (e_s - e_m) / ((tau - tau_membrane) (1 - e_m))`` with ``e_s = exp(-dt/tau)`` and
    ``e_m = exp(-dt/tau_membrane)``. Postsynaptic potentials then equal the analytic ones at
    every step, whatever ``dt``. The target must then be an LIF / ALIF with that
    ``tau_membrane`` (a :class:`~celltrain.neural.Layer` checks it when it wires the
    connection); the state ``current`` stays the decaying current itself.

    Args:
        tau: decay time constant (ms, > 0).
        amplitude: current jump per spike and unit weight (nA, > 0).
        tau_membrane: for exact integration, the target's membrane time constant (ms, > 0);
            ``None`` (default) holds the current constant over each step.

    Example::

        >>> synapse = ExponentialCurrent(tau=5.0)
        >>> [round(synapse(torch.tensor([[t == 0]])).item(), 4) for t in range(3)]
        [1.0, 0.8187, 0.6703]
        >>> exact = ExponentialCurrent(tau=5.0, tau_membrane=20.0)  # for an LIF of tau 20 ms
        >>> round(exact.exact_factor(), 4)  # the step's constant current per unit current
        0.9056
    """

    def __init__(
        self, tau: float = 5.0, amplitude: float = 1.0, tau_membrane: float | None = None
    ) -> None:
        super().__init__(amplitude)
        self.tau = positive("tau", tau)
        self.tau_membrane = None if tau_membrane is None else positive("tau_membrane", tau_membrane)

    def check_target(self, name: str, neuron: torch.nn.Module) -> None:
        if self.tau_membrane is not None:
            _membrane_target(self, name, neuron)

    def exact_factor(self) -> float:
        """The factor from the decaying current at a step's start to the constant current that
        has the same effect on the membrane over the step (1.0 without ``tau_membrane``)."""
        if self.tau_membrane is None:
            return 1.0
        tau, tau_m, dt = self.tau, self.tau_membrane, self.dt
        through = -math.expm1(-dt / tau_m)  # 1 - e_m: a constant current's effect
        if abs(tau - tau_m) <= 1e-9 * tau_m:  # the limit tau -> tau_membrane
            return (dt / tau_m) * math.exp(-dt / tau_m) / through
        return tau * (math.exp(-dt / tau) - math.exp(-dt / tau_m)) / ((tau - tau_m) * through)

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return decayed(self.current, decay_fraction(self.dt, self.tau)).add_(
            spike, alpha=self.amplitude
        )

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        decay = math.exp(-self.dt / self.tau)
        return exponential_filter(self.amplitude * spikes, decay, self.current)

    def advance(self, spike: torch.Tensor) -> torch.Tensor:
        current = super().advance(spike)
        return current if self.tau_membrane is None else current * self.exact_factor()

    @gradient_free
    def run(self, spikes: torch.Tensor) -> torch.Tensor:
        currents = super().run(spikes)
        return currents if self.tau_membrane is None else currents * self.exact_factor()

    def extra_repr(self) -> str:
        exact = "" if self.tau_membrane is None else f", tau_membrane={self.tau_membrane}"
        return f"tau={self.tau}, amplitude={self.amplitude}{exact}"


class VoltageJump(Synapse):
    """Each spike makes the target's voltage jump by ``amplitude`` mV per unit weight, whatever
    ``dt`` (``v += w`` in reference simulators' terms).

    It delivers a one-step current pulse of ``amplitude / (resistance * (1 - exp(-dt /
    tau_membrane)))`` nA, which moves an LIF membrane of that resistance and time constant by
    exactly ``amplitude`` mV at the end of the spike's step, added to the voltage decayed over
    that step. The target must be an LIF / ALIF with these ``tau_membrane`` and ``resistance``
    (a :class:`~celltrain.neural.Layer` checks it when it wires the connection); the state
    ``current`` is that pulse.

    Pick it to port a model written with voltage jumps (``on_pre: v += w``); pick
    :class:`DeltaCurrent` for current pulses of one step and :class:`ExponentialCurrent` for
    current-based synapses.

    Args:
        amplitude: voltage jump per spike and unit weight (mV, > 0).
        tau_membrane: the target's membrane time constant (ms, > 0).
        resistance: the target's membrane resistance (MOhm, > 0).

    Example::

        >>> lif = LIF(1, threshold_voltage=1e9)
        >>> layer = Layer({"n": lif}, {"jump": ("input", "n", Linear(1, 1, weight=torch.ones(1, 1),
        ...     synapse=VoltageJump(2.0, tau_membrane=20.0, resistance=1.0)))})
        >>> _ = layer(input=torch.ones(1, 1, dtype=torch.bool))
        >>> round(lif.voltage.item() + 65.0, 6)  # a jump of 2 mV from rest
        2.0
    """

    def __init__(
        self, amplitude: float = 1.0, *, tau_membrane: float = 20.0, resistance: float = 1.0
    ) -> None:
        super().__init__(amplitude)
        self.tau_membrane = positive("tau_membrane", tau_membrane)
        self.resistance = positive("resistance", resistance)

    def check_target(self, name: str, neuron: torch.nn.Module) -> None:
        _membrane_target(self, name, neuron)

    def pulse(self) -> float:
        """Current (nA per unit weight) of the one-step pulse that makes a jump of
        ``amplitude`` mV."""
        return self.amplitude / (self.resistance * -math.expm1(-self.dt / self.tau_membrane))

    def step(self, spike: torch.Tensor) -> torch.Tensor:
        return spike * self.pulse()

    def window(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.step(spikes)

    def extra_repr(self) -> str:
        return (
            f"amplitude={self.amplitude}, tau_membrane={self.tau_membrane}, "
            f"resistance={self.resistance}"
        )
