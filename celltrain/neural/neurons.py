"""Spiking neuron models: :class:`LIF`, :class:`ALIF` (adaptive threshold), :class:`Izhikevich`
and :class:`QIF`, each a module that holds the state and calls a pure step function of
:mod:`celltrain.neural.functional`.

A neuron maps the total input current of one time step, shape ``(B, *shape)`` in nA, to the
spikes of that step, shape ``(B, *shape)`` bool. Voltages are in mV, times in ms, resistance in
MOhm (so ``resistance * current`` is in mV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from celltrain.neural.functional import (
    IzhikevichConstants,
    LIFConstants,
    QIFConstants,
    alif_step,
    izhikevich_step,
    lif_constants,
    lif_step,
    qif_step,
)
from celltrain.neural.stepped import Stepped
from celltrain.neural.updater import Updater
from celltrain.utils.checks import batched, finite, non_negative, positive, reduction_of, shape_of
from celltrain.utils.filters import decay_fraction, exponential_filter, state_dtype
from celltrain.utils.gradient import gradient_free
from celltrain.utils.spikes import spike_values


class Neuron(Stepped):
    """Base class of neuron populations of a fixed ``shape``.

    State (each ``(B, *shape)``): ``voltage`` (mV), ``refractory`` (ms of refractory time left),
    ``spike`` (bool, the spikes of the last step). A model is a pure step function (see
    :mod:`celltrain.neural.functional`) and a subclass that sets :attr:`rest_voltage`, holds
    any extra state (:meth:`register_state`, :meth:`rest_state`) and implements :meth:`step`
    by calling the function on its state.

    A refractory neuron counts ``refractory`` down by ``dt`` per step; a remainder below
    ``1e-3 * dt`` is rounding error of that countdown (e.g. ``0.5 - 5 * 0.1`` in float32), not
    time left, so a neuron is held for exactly ``refractory_period / dt`` steps after its
    spike's step when that is an integer, and ``ceil(refractory_period / dt)`` otherwise.

    Args:
        shape: shape of the population (int or tuple of ints), without the batch dimension.

    Example::

        >>> from celltrain.neural.functional import lif_constants, lif_step
        >>> class Leaky(Neuron):  # a model: its step function on the state
        ...     rest_voltage = -65.0
        ...     def step(self, current):
        ...         c = lif_constants(dt=self.dt, tau_membrane=10.0, rest_voltage=-65.0,
        ...                           reset_voltage=-65.0, threshold_voltage=-50.0,
        ...                           refractory_period=0.0, resistance=1.0, like=current)
        ...         spike, self.voltage, self.refractory = lif_step(
        ...             current, self.voltage, self.refractory, c)
        ...         return spike
        >>> Leaky(2)(torch.tensor([[0.0, 1000.0]]))
        tensor([[False,  True]])
    """

    #: the potential (mV) a population starts from at rest; every model sets it
    rest_voltage: float

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.shape = shape_of("shape", shape)
        self.updater: Updater | None = None  # neurons with learned parameters set one
        #: whether the neuron adds changes of its learned parameters (e.g. ALIF's theta) to its
        #: updater: set by the trainers that own a cell targeting it (``CellTrainer.train()`` /
        #: ``eval()``), never by the layer's own training mode; False for a neuron alone
        self.learning = False
        self.register_state("voltage", torch.get_default_dtype())
        self.register_state("refractory", torch.get_default_dtype())
        self.register_state("spike", torch.bool)

    @property
    def size(self) -> int:
        """Number of neurons in the population."""
        return math.prod(self.shape)

    def rest_state(self, batch: int) -> None:
        """Create the state of ``batch`` samples at rest. Subclasses extend it."""
        like = self.voltage
        self.voltage = like.new_full((batch, *self.shape), self.rest_voltage)
        self.refractory = like.new_zeros((batch, *self.shape))
        self.spike = torch.zeros((batch, *self.shape), dtype=torch.bool, device=like.device)

    @gradient_free
    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Advance one time step.

        Args:
            current: input current in nA, shape ``(B, *shape)``, floating point.

        Returns:
            spikes of this step, shape ``(B, *shape)``, bool.
        """
        self.prepare(current)
        return self.advance(current)

    def prepare(self, current: torch.Tensor, name: str = "current") -> None:
        """Check one step's ``current`` ``(B, *shape)`` and create the state at rest if needed.

        Raises:
            TypeError: ``current`` is not floating point.
            ValueError: wrong shape, or a batch size other than the state's (without
                :meth:`reset`).
        """
        batch = batched(name, current, self.shape)
        if not current.is_floating_point():
            raise TypeError(f"{name} must be a floating point tensor, got dtype {current.dtype}")
        if self.needs_state(batch):
            self.rest_state(batch)

    def advance(self, current: torch.Tensor) -> torch.Tensor:
        """One step without argument checks (the state must exist, see :meth:`prepare`): the
        inner loop of :meth:`~celltrain.neural.Layer.run`. Returns the spikes."""
        spike = self.step(current)
        self.set_state(spike=spike)
        return spike

    def step(self, current: torch.Tensor) -> torch.Tensor:
        """Update the state with one step of ``current`` and return the new spikes."""
        raise NotImplementedError

    def begin_window(self) -> None:
        """Called by :meth:`~celltrain.neural.Layer.run` before it steps a window of several
        steps; a neuron that learns per step (e.g. :class:`ALIF`) may defer that work to
        :meth:`end_window`. Nothing by default."""

    def end_window(self, spikes: torch.Tensor | None) -> None:
        """Called by :meth:`~celltrain.neural.Layer.run` after the window's last step.

        Args:
            spikes: this population's spikes at every step of the window, ``(T, B, *shape)``
                bool (only the steps taken, if the window stopped at an error), or None when
                no step was taken. Nothing by default.
        """


class LIF(Neuron):
    """Leaky integrate-and-fire neurons.

    Sub-threshold dynamics ``tau_membrane * dv/dt = -(v - rest_voltage) + resistance * I`` are
    integrated exactly for a current held constant over each step:
    ``v <- rest + (v - rest) * exp(-dt/tau) + resistance * I * (1 - exp(-dt/tau))``, computed
    as ``v + k * (rest + resistance * I - v)`` with ``k = -expm1(-dt/tau)``, which keeps the
    decay rate accurate in float32. When ``v >= threshold`` at the end of a step the neuron
    spikes in that step, ``v`` is set to ``reset_voltage`` and held there (input ignored) for
    ``refractory_period`` ms: ``ceil(refractory_period / dt)`` steps after the spike's step.

    A current held constant over each step is exact for constant inputs; an exponentially
    decaying synaptic current is integrated exactly with
    ``ExponentialCurrent(tau_membrane=...)`` (see there).

    Args:
        shape: population shape.
        tau_membrane: membrane time constant (ms, > 0).
        rest_voltage: resting potential (mV).
        reset_voltage: potential after a spike (mV).
        threshold_voltage: firing threshold (mV), above ``reset_voltage``.
        refractory_period: time held at reset after a spike (ms, >= 0).
        resistance: membrane resistance (MOhm, > 0).

    Example::

        >>> lif = LIF(3)
        >>> lif(torch.tensor([[0.0, 100.0, 1000.0]]))
        tensor([[False, False,  True]])
        >>> lif.voltage  # the spiking neuron is reset
        tensor([[-65.0000, -60.1229, -65.0000]])
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        tau_membrane: float = 20.0,
        rest_voltage: float = -65.0,
        reset_voltage: float = -65.0,
        threshold_voltage: float = -52.0,
        refractory_period: float = 0.0,
        resistance: float = 1.0,
    ) -> None:
        super().__init__(shape)
        self.tau_membrane = positive("tau_membrane", tau_membrane)
        self.rest_voltage = finite("rest_voltage", rest_voltage)
        self.reset_voltage = finite("reset_voltage", reset_voltage)
        self.threshold_voltage = finite("threshold_voltage", threshold_voltage)
        if self.threshold_voltage <= self.reset_voltage:
            raise ValueError(
                f"threshold_voltage must be above reset_voltage={reset_voltage}, "
                f"got {threshold_voltage}"
            )
        self.refractory_period = non_negative("refractory_period", refractory_period)
        self.resistance = positive("resistance", resistance)
        self._constants_key: tuple | None = None  # what self._constants was made for
        self._constants: LIFConstants | None = None
        #: the constants of the Layer.run window under way (parameters do not change within
        #: one), so its steps skip the check of constants(); None outside a window
        self._window_constants: LIFConstants | None = None

    def threshold(self) -> torch.Tensor | float:
        """Firing threshold in mV (a tensor of shape ``(B, *shape)`` for adaptive models)."""
        return self.threshold_voltage

    def constants(self, like: torch.Tensor) -> LIFConstants:
        """This step's :class:`~celltrain.neural.functional.LIFConstants` in ``like``'s dtype
        and device, made again whenever ``dt``, a parameter, the dtype or the device changed
        (0-dim tensors: made once, not at every step)."""
        key = (
            like.dtype,
            like.device,
            self.dt,
            self.tau_membrane,
            self.rest_voltage,
            self.reset_voltage,
            self.threshold_voltage,
            self.refractory_period,
            self.resistance,
        )
        if self._constants_key != key:
            self._constants = lif_constants(
                dt=self.dt,
                tau_membrane=self.tau_membrane,
                rest_voltage=self.rest_voltage,
                reset_voltage=self.reset_voltage,
                threshold_voltage=self.threshold_voltage,
                refractory_period=self.refractory_period,
                resistance=self.resistance,
                like=like,
            )
            self._constants_key = key
        return self._constants

    def begin_window(self) -> None:
        self._window_constants = self.constants(self.voltage)

    def end_window(self, spikes: torch.Tensor | None) -> None:
        self._window_constants = None

    def step(self, current: torch.Tensor) -> torch.Tensor:
        c = self._window_constants
        spike, voltage, refractory = lif_step(
            current, self.voltage, self.refractory, self.constants(current) if c is None else c
        )
        self.set_state(voltage=voltage, refractory=refractory)
        return spike


class ALIF(LIF):
    """LIF neurons with an adaptive threshold (Diehl & Cook 2015).

    The threshold of sample ``b`` is ``threshold_voltage + adaptation[b]``. At the start of a
    sample ``adaptation`` equals the learned ``theta`` (shape ``shape``, mV); during the sample it
    decays with ``tau_theta`` and grows by ``theta_plus`` at every spike of that sample, each
    sample on its own. Within a step the adaptation decays first, and the voltage at the end of
    the step is compared with ``threshold_voltage`` plus the decayed adaptation (as in Diehl &
    Cook's code, Brian2 and BindsNET); a spike then adds ``theta_plus``.

    A slow adaptation (``dt / tau_theta`` below
    :data:`~celltrain.utils.filters.SLOW_FRACTION`, e.g. the default ``tau_theta = 1e7`` ms) is
    held in float64 in a float32 network: in float32 its per-step decrease would be rounded
    to a few units in the last place at every step, and it would decay up to 20% too fast.

    The learned ``theta`` changes only through the neuron's own :attr:`updater`: while
    :attr:`learning` is set (by a trainer in training mode that owns a cell targeting the
    neuron; the layer's own ``training`` flag plays no part), each step adds the batch-reduced
    change of ``adaptation`` (mean or sum over samples, ``batch_reduction``) to
    ``updater.theta``; a trainer's ``update()`` applies it
    together with the weights. The pending sum telescopes, so after a batch it equals
    ``reduce_b(adaptation_end[b]) - theta``: at batch size 1 this is exactly the classic
    per-spike rule, and with batches or several processes every learned change sits in one
    reducible place.

    Args:
        shape, tau_membrane, rest_voltage, reset_voltage, threshold_voltage, refractory_period,
        resistance: as for :class:`LIF`.
        theta_plus: threshold increase per spike (mV, >= 0).
        tau_theta: decay time constant of the threshold adaptation (ms, > 0).
        batch_reduction: ``"mean"`` or ``"sum"`` over the samples of a batch.

    Example::

        >>> alif = ALIF(2, theta_plus=1.0, tau_theta=100.0)
        >>> alif(torch.tensor([[0.0, 1000.0]]))
        tensor([[False,  True]])
        >>> alif.adaptation  # the spike raised its threshold by theta_plus
        tensor([[0., 1.]])
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        theta_plus: float = 0.05,
        tau_theta: float = 1e7,
        batch_reduction: str = "mean",
        **lif: float,
    ) -> None:
        super().__init__(shape, **lif)
        self.theta_plus = non_negative("theta_plus", theta_plus)
        self.tau_theta = positive("tau_theta", tau_theta)
        self.batch_reduction = reduction_of("batch_reduction", batch_reduction)
        self.theta = nn.Parameter(torch.zeros(self.shape), requires_grad=False)
        self.register_state("adaptation", torch.get_default_dtype())
        self.updater = Updater(self, ["theta"])
        # batch-reduced adaptation when a Layer.run window began (None outside a window or when
        # not learning): the window's theta change is learned from it at end_window
        self._window_start: torch.Tensor | None = None
        self._theta_fraction = decay_fraction(self.dt, self.tau_theta)  # of the window under way

    def rest_state(self, batch: int) -> None:
        super().rest_state(batch)
        dtype = state_dtype(self.voltage.dtype, decay_fraction(self.dt, self.tau_theta))
        self.adaptation = self.theta.detach().to(dtype).expand(batch, *self.shape).clone()

    def threshold(self) -> torch.Tensor:
        return self.threshold_voltage + self.adaptation

    def step(self, current: torch.Tensor) -> torch.Tensor:
        previous, c = self.adaptation, self._window_constants
        spike, voltage, refractory, adaptation = alif_step(
            current,
            self.voltage,
            self.refractory,
            previous,
            self.constants(current) if c is None else c,
            self._theta_fraction if c is not None else decay_fraction(self.dt, self.tau_theta),
            self.theta_plus,
        )
        self.set_state(voltage=voltage, refractory=refractory, adaptation=adaptation)
        if self.learning and self._window_start is None:  # in a window: at end_window
            change = self._reduce(adaptation - previous, 0)
            self.updater.theta.add(
                change.clamp_min(0.0), (-change).clamp_min(0.0), reduction=self.batch_reduction
            )
        return spike

    def _reduce(self, values: torch.Tensor, batch_dim: int) -> torch.Tensor:
        """``values`` reduced over the batch dimension by ``batch_reduction``."""
        return values.mean(batch_dim) if self.batch_reduction == "mean" else values.sum(batch_dim)

    def begin_window(self) -> None:
        """While learning, note the batch-reduced adaptation the window starts from; the
        window's threshold learning is then added once, at :meth:`end_window`."""
        super().begin_window()
        self._theta_fraction = decay_fraction(self.dt, self.tau_theta)
        self._window_start = self._reduce(self.adaptation, 0) if self.learning else None

    def end_window(self, spikes: torch.Tensor | None) -> None:
        """Add the window's adaptation changes to the updater, as per-step adds would.

        The adaptation is linear in the spikes, so its batch reduction follows the same
        recurrence as each sample's: ``A[t] = decay * A[t-1] + theta_plus * reduce_b s[t]``.
        It is recomputed here from the window's spikes with one
        :func:`~celltrain.utils.filters.exponential_filter` (instead of reducing the batch at
        every step), and its per-step changes are split into increases and decreases.
        """
        super().end_window(spikes)
        start, self._window_start = self._window_start, None
        if start is None or spikes is None or spikes.shape[0] == 0:
            return
        # in float64: with a slow decay (tau_theta ~ 1e7 ms) a step's decrease is about 1e-7
        # of the adaptation, float32's rounding step; the result is (T, *shape), small
        counts = spike_values(spikes).to(torch.float64)
        drive = self._reduce(counts, 1).mul_(self.theta_plus)  # (T, *shape)
        decay = math.exp(-self.dt / self.tau_theta)
        begin = start.to(torch.float64)
        reduced = exponential_filter(drive, decay, initial=begin)
        change = torch.diff(reduced, dim=0, prepend=begin.unsqueeze(0))
        self.updater.theta.add(
            change.clamp_min(0.0).sum(0).to(start.dtype),
            (-change).clamp_min(0.0).sum(0).to(start.dtype),
            reduction=self.batch_reduction,
        )


class Izhikevich(Neuron):
    """Izhikevich (2003) neurons: a quadratic voltage with a recovery variable.

    ``dv/dt = 0.04 v^2 + 5 v + 140 - u + resistance * I`` and ``du/dt = a (b v - u)`` (mV, ms),
    integrated with forward Euler; when ``v >= 30`` mV the neuron spikes, ``v <- c`` and
    ``u <- u + d``. The default parameters are regular spiking. Extra state: ``recovery`` (u).

    Args:
        shape: population shape.
        a: recovery time scale (1/ms, > 0).
        b: recovery sensitivity to v (1/ms... dimensionless here, as in the paper).
        c: reset voltage (mV).
        d: recovery increment after a spike.
        resistance: input resistance (MOhm, > 0).
        refractory_period: time held at reset after a spike (ms, >= 0).

    Example::

        >>> neuron = Izhikevich(2)
        >>> spikes = torch.stack([neuron(torch.tensor([[0.0, 10.0]])) for _ in range(200)])
        >>> spikes.sum(0)  # regular spiking under 10 nA
        tensor([[0, 5]])
    """

    peak_voltage = 30.0

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        a: float = 0.02,
        b: float = 0.2,
        c: float = -65.0,
        d: float = 8.0,
        resistance: float = 1.0,
        refractory_period: float = 0.0,
    ) -> None:
        super().__init__(shape)
        self.a = positive("a", a)
        self.b = finite("b", b)
        self.c = finite("c", c)
        self.d = finite("d", d)
        self.resistance = positive("resistance", resistance)
        self.refractory_period = non_negative("refractory_period", refractory_period)
        self.rest_voltage = self.c
        self.register_state("recovery", torch.get_default_dtype())

    def rest_state(self, batch: int) -> None:
        super().rest_state(batch)
        self.recovery = self.voltage * self.b

    def step(self, current: torch.Tensor) -> torch.Tensor:
        k = IzhikevichConstants(
            self.a,
            self.b,
            self.c,
            self.d,
            self.resistance,
            self.peak_voltage,
            self.refractory_period,
            self.dt,
        )
        spike, self.voltage, self.recovery, self.refractory = izhikevich_step(
            current, self.voltage, self.recovery, self.refractory, k
        )
        return spike


class QIF(Neuron):
    """Quadratic integrate-and-fire neurons (Latham et al. 2000), forward Euler:
    ``tau_membrane dv/dt = sharpness (v - rest)(v - critical) + resistance * I``. Below
    ``critical_voltage`` the voltage relaxes to ``rest_voltage``; above it, it runs away to
    ``peak_voltage``, where the neuron spikes and is set to ``reset_voltage`` (and held there
    for ``refractory_period`` ms).

    Args:
        shape: population shape.
        tau_membrane: membrane time constant (ms, > 0).
        sharpness: curvature of the quadratic (1/mV, > 0).
        rest_voltage, critical_voltage: the stable and the unstable fixed point (mV).
        peak_voltage, reset_voltage: spike cut-off and reset (mV).
        resistance: membrane resistance (MOhm, > 0).
        refractory_period: time held at reset after a spike (ms, >= 0).

    Example::

        >>> qif = QIF(2)
        >>> spikes = [qif(torch.tensor([[0.0, 60.0]])) for _ in range(100)]
        >>> torch.stack(spikes).sum(0)  # 100 ms: silent at rest, regular under 60 nA
        tensor([[ 0, 12]])
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        tau_membrane: float = 10.0,
        sharpness: float = 0.2,
        rest_voltage: float = -65.0,
        critical_voltage: float = -50.0,
        peak_voltage: float = 0.0,
        reset_voltage: float = -70.0,
        resistance: float = 1.0,
        refractory_period: float = 0.0,
    ) -> None:
        super().__init__(shape)
        self.tau_membrane = positive("tau_membrane", tau_membrane)
        self.sharpness = positive("sharpness", sharpness)
        self.rest_voltage = finite("rest_voltage", rest_voltage)
        self.critical_voltage = finite("critical_voltage", critical_voltage)
        self.peak_voltage = finite("peak_voltage", peak_voltage)
        self.reset_voltage = finite("reset_voltage", reset_voltage)
        self.resistance = positive("resistance", resistance)
        self.refractory_period = non_negative("refractory_period", refractory_period)

    def step(self, current: torch.Tensor) -> torch.Tensor:
        k = QIFConstants(
            self.dt,
            self.tau_membrane,
            self.sharpness,
            self.rest_voltage,
            self.critical_voltage,
            self.resistance,
            self.peak_voltage,
            self.reset_voltage,
            self.refractory_period,
        )
        spike, self.voltage, self.refractory = qif_step(current, self.voltage, self.refractory, k)
        return spike
