"""Lightning integration: :class:`SpikingModule`, :class:`LocalDDPStrategy` (``"ddp_local"``),
data modules, ready models and the ``celltrain`` command line."""

from celltrain.lightning.data import DigitsDataModule, IDXDataModule, IndexedDataset, read_idx
from celltrain.lightning.models import DiehlCook, diehl_cook_layer
from celltrain.lightning.module import SpikingModule, StepCounter
from celltrain.lightning.strategy import LocalDDPStrategy

__all__ = [
    "DiehlCook",
    "DigitsDataModule",
    "IDXDataModule",
    "IndexedDataset",
    "LocalDDPStrategy",
    "SpikingModule",
    "StepCounter",
    "diehl_cook_layer",
    "read_idx",
]
