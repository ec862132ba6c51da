"""Neuron dynamics as pure step functions (state and constants in, spikes and new state out),
in the manner of Norse's ``functional``; the modules in :mod:`celltrain.neural.neurons` hold the
state and call them."""

from celltrain.neural.functional.izhikevich import IzhikevichConstants, izhikevich_step
from celltrain.neural.functional.lif import LIFConstants, alif_step, lif_constants, lif_step
from celltrain.neural.functional.qif import QIFConstants, qif_step

__all__ = [
    "IzhikevichConstants",
    "LIFConstants",
    "QIFConstants",
    "alif_step",
    "izhikevich_step",
    "lif_constants",
    "lif_step",
    "qif_step",
]
