"""Bool spikes as numbers."""

from __future__ import annotations

import torch

# Below this many elements the plain bool cast is the cheaper call; above it the bool cast
# kernel is the slower one (measured in benchmarks/README.md).
_UINT8_FROM = 1024


def spike_values(spikes: torch.Tensor) -> torch.Tensor:
    """``spikes`` ready to be cast or added to floats: large contiguous bool tensors as a
    ``uint8`` view of the same memory (PyTorch casts that faster than ``bool``), anything
    else as it is."""
    if spikes.dtype == torch.bool and spikes.numel() >= _UINT8_FROM and spikes.is_contiguous():
        return spikes.view(torch.uint8)
    return spikes


def spikes_as(spikes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``spikes`` (any shape) as a new tensor of ``dtype``: 0/1 for bool spikes.

    Same values as ``spikes.to(dtype)``, cast through :func:`spike_values`.
    """
    return spike_values(spikes).to(dtype)
