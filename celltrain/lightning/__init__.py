"""Lightning integration: :class:`SpikingModule`, :class:`LocalDDPStrategy` (``"ddp_local"``),
data modules, the :class:`RateReadout` and :class:`FiringRate` metrics, the ready
:class:`DiehlCook` module and the ``celltrain`` command line. Importing it registers the
``"ddp_local"`` strategy with Lightning."""

from celltrain.lightning.data import DigitsDataModule, IDXDataModule, IndexedDataset, read_idx
from celltrain.lightning.models import DiehlCook
from celltrain.lightning.module import SpikingModule, StepCounter
from celltrain.lightning.rates import FiringRate
from celltrain.lightning.readout import RateReadout
from celltrain.lightning.strategy import LocalDDPStrategy  # registers "ddp_local"

__all__ = [
    "DiehlCook",
    "DigitsDataModule",
    "FiringRate",
    "IDXDataModule",
    "IndexedDataset",
    "LocalDDPStrategy",
    "RateReadout",
    "SpikingModule",
    "StepCounter",
    "read_idx",
]
