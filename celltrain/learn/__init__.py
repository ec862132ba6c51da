"""Learning: the seed-API :class:`CellTrainer`, :class:`IndependentCellTrainer` (a rule is
``check`` + ``add_monitors`` + ``learn_cell``), the rules :class:`STDP`, :class:`TripletSTDP`,
:class:`MSTDP`, :class:`MSTDPET`, :class:`Homeostasis`, and what a user writing a rule needs:
:class:`PairBasedSTDP`, :func:`add_scaled` / :func:`add_signed` (signed terms into an
updater's potentiation / depression sums), the attribute paths :data:`PRE` / :data:`POST`, and
the pure functions of :mod:`celltrain.learn.functional`."""

from celltrain.learn import functional
from celltrain.learn.homeostasis import Homeostasis
from celltrain.learn.mstdp import MSTDP, MSTDPET, reward_per_sample
from celltrain.learn.stdp import POST, PRE, STDP, PairBasedSTDP
from celltrain.learn.terms import add_scaled, add_signed
from celltrain.learn.trainer import CellState, CellTrainer, IndependentCellTrainer
from celltrain.learn.triplet import TripletSTDP

__all__ = [
    "MSTDP",
    "MSTDPET",
    "POST",
    "PRE",
    "STDP",
    "CellState",
    "CellTrainer",
    "Homeostasis",
    "IndependentCellTrainer",
    "PairBasedSTDP",
    "TripletSTDP",
    "add_scaled",
    "add_signed",
    "functional",
    "reward_per_sample",
]
