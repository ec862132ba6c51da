"""Bool spikes as numbers."""

from __future__ import annotations

import torch

# Below this many elements the plain bool cast is the cheaper call; above it the bool cast
# kernel is the slower one (e.g. 5.0 us against 3.3 us for 3,200 spikes on our CPU).
_UINT8_FROM = 1024


def spikes_as(spikes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``spikes`` (any shape) as a new tensor of ``dtype``: 0/1 for bool spikes.

    Same values as ``spikes.to(dtype)``; large bool tensors are cast through a ``uint8`` view
    of the same memory, which PyTorch converts faster than ``bool``.
    """
    if spikes.dtype == torch.bool and spikes.numel() >= _UINT8_FROM and spikes.is_contiguous():
        return spikes.view(torch.uint8).to(dtype)
    return spikes.to(dtype)
