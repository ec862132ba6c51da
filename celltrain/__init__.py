"""celltrain: spiking neural networks trained with local learning rules.

The layers below Lightning, re-exported here: the simulation core (:mod:`celltrain.neural`),
observation (:mod:`celltrain.observe`) and learning (:mod:`celltrain.learn`). ``import
celltrain`` loads neither Lightning nor torchmetrics; the Lightning side (``SpikingModule``,
``DiehlCook``, data modules, the ``"ddp_local"`` strategy, the readout metrics) comes from
:mod:`celltrain.lightning`, the callbacks from :mod:`celltrain.callbacks`.

Imports go one way: ``lightning -> callbacks -> learn -> observe -> neural -> utils``.
"""

from celltrain.learn import (
    MSTDP,
    MSTDPET,
    STDP,
    CellTrainer,
    Homeostasis,
    IndependentCellTrainer,
    TripletSTDP,
)
from celltrain.neural import (
    ALIF,
    LIF,
    Cell,
    Clamp,
    Conv2d,
    DeltaCurrent,
    Direct,
    ExponentialCurrent,
    HardBound,
    Izhikevich,
    Lateral,
    Layer,
    Linear,
    Normalize,
    PoissonEncoder,
    PowerBound,
    RegularEncoder,
    SoftBound,
    Updater,
    VoltageJump,
    diehl_cook_layer,
)
from celltrain.observe import EMA, Count, History, Latest, Mean, Monitor, Sum, TimeSince, Trace

__version__ = "0.2.0"

__all__ = [
    "ALIF",
    "EMA",
    "LIF",
    "MSTDP",
    "MSTDPET",
    "STDP",
    "Cell",
    "CellTrainer",
    "Clamp",
    "Conv2d",
    "Count",
    "DeltaCurrent",
    "Direct",
    "ExponentialCurrent",
    "HardBound",
    "History",
    "Homeostasis",
    "IndependentCellTrainer",
    "Izhikevich",
    "Latest",
    "Lateral",
    "Layer",
    "Linear",
    "Mean",
    "Monitor",
    "Normalize",
    "PoissonEncoder",
    "PowerBound",
    "RegularEncoder",
    "SoftBound",
    "Sum",
    "TimeSince",
    "Trace",
    "TripletSTDP",
    "Updater",
    "VoltageJump",
    "__version__",
    "diehl_cook_layer",
]
