"""Spiking simulation core: neurons, synapses, connections, Layer and Cell, Updater, encoders,
constraints, and ready networks (:func:`diehl_cook_layer`).

Nothing here depends on Lightning; a plain loop can drive every component.
"""

from celltrain.neural.bounds import Bound, HardBound, PowerBound, SoftBound, Unbounded
from celltrain.neural.cell import Cell
from celltrain.neural.connections import Connection, Conv2d, Direct, Lateral, Linear
from celltrain.neural.constraints import Clamp, Normalize
from celltrain.neural.encoders import Encoder, PoissonEncoder, RegularEncoder
from celltrain.neural.layer import Layer
from celltrain.neural.networks import diehl_cook_layer, voltage_resistance
from celltrain.neural.neurons import ALIF, LIF, QIF, Izhikevich, Neuron
from celltrain.neural.stepped import Stepped
from celltrain.neural.synapses import DeltaCurrent, ExponentialCurrent, Synapse, VoltageJump
from celltrain.neural.updater import ParameterUpdate, Updater
from celltrain.neural.window import HookedModule, WindowObserver

__all__ = [
    "ALIF",
    "LIF",
    "Bound",
    "Cell",
    "Clamp",
    "Connection",
    "Conv2d",
    "DeltaCurrent",
    "Direct",
    "Encoder",
    "ExponentialCurrent",
    "HardBound",
    "HookedModule",
    "Izhikevich",
    "Lateral",
    "Layer",
    "Linear",
    "Neuron",
    "Normalize",
    "ParameterUpdate",
    "PoissonEncoder",
    "PowerBound",
    "QIF",
    "RegularEncoder",
    "SoftBound",
    "Stepped",
    "Synapse",
    "Unbounded",
    "Updater",
    "VoltageJump",
    "WindowObserver",
    "diehl_cook_layer",
    "voltage_resistance",
]
