"""Ready networks as plain :class:`~celltrain.neural.Layer` objects (no Lightning): the Diehl &
Cook (2015) network and the resistance that makes weights read as voltage jumps."""

from __future__ import annotations

import math

from celltrain.neural.bounds import HardBound
from celltrain.neural.connections import Direct, Lateral, Linear
from celltrain.neural.constraints import Normalize
from celltrain.neural.layer import Layer
from celltrain.neural.neurons import ALIF, LIF
from celltrain.utils.checks import positive


def voltage_resistance(tau: float, dt: float) -> float:
    """Resistance (MOhm) at which a one-step current of 1 nA raises the voltage by 1 mV, so
    weights read as voltage jumps per spike (as in Diehl & Cook's code).

    Raises:
        ValueError: ``tau`` or ``dt`` (ms) is not a finite number > 0.
    """
    return 1.0 / -math.expm1(-positive("dt", dt) / positive("tau", tau))


def diehl_cook_layer(
    inputs: int = 64,
    neurons: int = 100,
    dt: float = 1.0,
    weight_total: float = 20.0,
    weight_max: float = 1.0,
    exc_inh_weight: float = 22.5,
    inh_exc_weight: float = 120.0,
    theta_plus: float = 0.05,
    tau_theta: float = 1e7,
) -> Layer:
    """The Diehl & Cook (2015) network as one :class:`~celltrain.neural.Layer`.

    Input ``input`` -> excitatory ALIF neurons ``exc`` (``Linear``, learned, weights in
    ``[0, weight_max]`` normalised to ``weight_total`` per neuron) -> one-to-one to inhibitory
    LIF neurons ``inh`` (``Direct``, ``exc_inh_weight`` mV) -> every other excitatory neuron
    (``Lateral``, ``-inh_exc_weight`` mV). Neuron constants follow the paper's code (mV, ms):
    excitatory rest -65, reset -60, threshold -52, refractory 5, tau 100; inhibitory rest -60,
    reset -45, threshold -40, refractory 2, tau 10. Resistances make weights voltage jumps.
    """
    exc = ALIF(
        neurons,
        tau_membrane=100.0,
        rest_voltage=-65.0,
        reset_voltage=-60.0,
        threshold_voltage=-52.0,
        refractory_period=5.0,
        resistance=voltage_resistance(100.0, dt),
        theta_plus=theta_plus,
        tau_theta=tau_theta,
    )
    inh = LIF(
        neurons,
        tau_membrane=10.0,
        rest_voltage=-60.0,
        reset_voltage=-45.0,
        threshold_voltage=-40.0,
        refractory_period=2.0,
        resistance=voltage_resistance(10.0, dt),
    )
    input_exc = Linear(
        inputs,
        neurons,
        weight_range=(0.0, 0.3 * weight_max),
        bound=HardBound(0.0, weight_max),
        constraints=[Normalize(weight_total)],
    )
    input_exc.updater.step()  # normalise the initial weights
    return Layer(
        neurons={"exc": exc, "inh": inh},
        connections={
            "input_exc": ("input", "exc", input_exc),
            "exc_inh": ("exc", "inh", Direct(neurons, weight_range=(exc_inh_weight,) * 2)),
            "inh_exc": ("inh", "exc", Lateral(neurons, weight_range=(-inh_exc_weight,) * 2)),
        },
        inputs=("input",),
        dt=dt,
    )
