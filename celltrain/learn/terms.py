"""Adding signed learning terms to an updater's potentiation / depression sums."""

from __future__ import annotations

import torch

from celltrain.neural import ParameterUpdate


def add_scaled(update: ParameterUpdate, rate: float, term: torch.Tensor, reduction: str) -> None:
    """Add ``rate * term`` for a non-negative ``term``: to ``pos`` if ``rate > 0``, else to
    ``neg`` (as ``|rate| * term``). A zero rate adds nothing. ``reduction`` is how ``term`` was
    reduced over the batch."""
    if rate > 0:
        update.add(pos=rate * term, reduction=reduction)
    elif rate < 0:
        update.add(neg=-rate * term, reduction=reduction)


def add_signed(update: ParameterUpdate, delta: torch.Tensor, reduction: str) -> None:
    """Add a change of any sign: its positive part to ``pos``, its negative part to ``neg``."""
    update.add(pos=delta.clamp_min(0.0), neg=(-delta).clamp_min(0.0), reduction=reduction)
