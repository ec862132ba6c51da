"""Homeostatic plasticity: push each target neuron's firing rate toward a target rate."""

from __future__ import annotations

from typing import Any

import torch

from celltrain.learn.checks import check_common
from celltrain.learn.stdp import POST
from celltrain.learn.terms import add_signed
from celltrain.learn.trainer import CellState, IndependentCellTrainer
from celltrain.neural import Cell
from celltrain.observe import Latest, Monitor
from celltrain.utils.checks import non_negative


class Homeostasis(IndependentCellTrainer):
    """Move each target neuron's input weights so its firing rate approaches ``target_rate``.

    Each step, for target neuron ``o`` of sample ``b`` the error is
    ``target_rate * dt / 1000 - spike[b, o]`` (expected minus observed spikes in the step).
    Every weight onto ``o`` changes by ``lr * error``, reduced over the batch; through
    ``connection.correlate(error, ones)`` this works for every connection kind (for ``Conv2d``
    the error is summed over the positions that share a weight). Weights go down while the rate
    is above target and up while below; the expected change is zero exactly at the target.

    Monitors per cell: ``spike_post`` (:class:`~celltrain.observe.Latest`).

    Args:
        target_rate: target firing rate (Hz, >= 0).
        lr: weight change per unit error (weight units per spike).
        batch_reduction: ``"mean"`` or ``"sum"``.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.zeros(1, 2)
        >>> layer = Layer({"n": LIF(1)}, {"in": ("input", "n", Linear(2, 1, weight=w))})
        >>> rule = Homeostasis(target_rate=100.0, lr=0.1)
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> _ = layer(input=torch.zeros(1, 2, dtype=torch.bool)); rule()
        >>> layer.connections["in"].updater.weight.pos  # silent below 100 Hz: weights go up
        tensor([[0.0100, 0.0100]])
    """

    def __init__(
        self, target_rate: float = 5.0, lr: float = 1e-3, batch_reduction: str = "mean"
    ) -> None:
        super().__init__(target_rate=target_rate, lr=lr, batch_reduction=batch_reduction)

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        hyperparameters["target_rate"] = non_negative("target_rate", hyperparameters["target_rate"])
        return check_common(hyperparameters, ())

    def add_monitors(self, name: str, state: CellState) -> None:
        self.add_monitor(name, "spike_post", POST, Monitor.partial(Latest))

    def learn_cell(
        self, name: str, cell: Cell, state: CellState, monitors: dict[str, Monitor]
    ) -> None:
        """Add the cell's homeostatic change of this step."""
        spike = monitors["spike_post"].peek()
        if spike is None:
            return
        connection = cell.connection
        dtype = connection.weight.dtype
        expected = state.target_rate * cell.layer.dt / 1000.0
        error = expected - spike.to(dtype)
        ones = torch.ones((spike.shape[0], *connection.in_shape), dtype=dtype, device=spike.device)
        change = connection.correlate(error, ones, state.batch_reduction)
        add_signed(cell.updater.weight, state.lr * change, state.batch_reduction)
