"""Adding signed learning terms to an updater's potentiation / depression sums."""

from __future__ import annotations

import torch

from celltrain.neural import ParameterUpdate


def add_scaled(update: ParameterUpdate, rate: float, term: torch.Tensor) -> None:
    """Add ``rate * term`` for a non-negative ``term``: to ``pos`` if ``rate > 0``, else to
    ``neg`` (as ``|rate| * term``). A zero rate adds nothing."""
    if rate > 0:
        update.add(pos=rate * term)
    elif rate < 0:
        update.add(neg=-rate * term)


def add_signed(update: ParameterUpdate, delta: torch.Tensor) -> None:
    """Add a change of any sign: its positive part to ``pos``, its negative part to ``neg``."""
    update.add(pos=delta.clamp_min(0.0), neg=(-delta).clamp_min(0.0))
