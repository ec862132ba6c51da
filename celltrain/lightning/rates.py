"""``FiringRate``: a population's mean firing rate over many batches (a torchmetrics Metric)."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


class FiringRate(Metric):
    """Mean firing rate (Hz) of a population over every sample seen since the last reset.

    ``update(counts, seconds)`` adds the spikes of a batch and the neuron-seconds they were
    counted over (``counts.numel() * seconds``); :meth:`compute` returns their ratio, i.e. the
    sample-weighted mean of the batches' rates. Both states are ``dist_reduce_fx="sum"``, so with
    several processes :meth:`compute` gives exactly the rate over the union of the ranks'
    samples, and they are saved in checkpoints (a run resumed mid-epoch reports the whole
    epoch's rate).

    Example::

        >>> rate = FiringRate()
        >>> rate.update(torch.tensor([[5, 10]]), seconds=0.25)  # spikes of one sample in 250 ms
        >>> rate.compute()
        tensor(30., dtype=torch.float64)
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self) -> None:
        super().__init__()
        self.add_state(
            "spikes", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum", persistent=True
        )
        self.add_state(
            "neuron_seconds",
            torch.zeros((), dtype=torch.float64),
            dist_reduce_fx="sum",
            persistent=True,
        )

    def update(self, counts: torch.Tensor, seconds: float) -> None:
        """Add a batch of spike ``counts`` ``(B, *shape)`` counted over ``seconds`` (s) each.

        Raises:
            ValueError: ``seconds`` is not a finite number > 0, or ``counts`` is a floating
                point tensor (counts are integers: an int or bool tensor).
        """
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        if counts.is_floating_point() or counts.is_complex():
            raise ValueError(f"counts must be an integer or bool tensor, got {counts.dtype}")
        self.spikes += counts.sum(dtype=torch.float64)
        self.neuron_seconds += counts.numel() * seconds

    def compute(self) -> torch.Tensor:
        """The mean rate (Hz, 0-dim float64); NaN before any neuron-second was counted."""
        return self.spikes / self.neuron_seconds
