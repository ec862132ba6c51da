"""Learning: the seed-API :class:`CellTrainer`, :class:`IndependentCellTrainer`, and the rules
:class:`STDP`, :class:`TripletSTDP`, :class:`MSTDP`, :class:`MSTDPET`, :class:`Homeostasis`."""

from celltrain.learn.homeostasis import Homeostasis
from celltrain.learn.mstdp import MSTDP, MSTDPET
from celltrain.learn.stdp import STDP
from celltrain.learn.trainer import CellState, CellTrainer, IndependentCellTrainer
from celltrain.learn.triplet import TripletSTDP

__all__ = [
    "MSTDP",
    "MSTDPET",
    "STDP",
    "CellState",
    "CellTrainer",
    "Homeostasis",
    "IndependentCellTrainer",
    "TripletSTDP",
]
