"""Triplet STDP (Pfister & Gerstner 2006)."""

from __future__ import annotations

from typing import Any

import torch

from celltrain.learn.checks import check_common
from celltrain.learn.stdp import POST, PRE
from celltrain.learn.terms import add_scaled
from celltrain.learn.trainer import CellState, IndependentCellTrainer
from celltrain.neural import Cell
from celltrain.observe import Latest, Monitor, Trace
from celltrain.utils.filters import decay_fraction, decayed


class TripletSTDP(IndependentCellTrainer):
    """Triplet STDP of Pfister & Gerstner (2006), with unit-amplitude traces.

    Traces: presynaptic ``r1`` (``tau_plus``) and ``r2`` (``tau_x``), postsynaptic ``o1``
    (``tau_minus``) and ``o2`` (``tau_y``). Each step:

    - at a postsynaptic spike: ``r1 * (lr2_post + lr3_post * o2(t - eps))``,
    - at a presynaptic spike: ``o1 * (lr2_pre + lr3_pre * r2(t - eps))``,

    where ``x(t - eps)`` is the trace just before this step's own spike (the previous step's
    value decayed by one step). The paper's depression amplitudes ``A2-``, ``A3-`` are
    ``-lr2_pre``, ``-lr3_pre``. ``trace_mode="cumulative"`` is the all-to-all model,
    ``"nearest"`` the nearest-spike model. Defaults: the paper's all-to-all visual cortex fit.
    Terms are reduced over the batch and split into ``pos`` / ``neg`` by sign.

    Args:
        lr2_post, lr3_post: pair and triplet potentiation rates (weight units).
        lr2_pre, lr3_pre: pair and triplet rates at presynaptic spikes (negative: depression).
        tau_plus, tau_x: presynaptic trace time constants (ms, > 0).
        tau_minus, tau_y: postsynaptic trace time constants (ms, > 0).
        trace_mode: ``"cumulative"`` (all-to-all) or ``"nearest"``.
        batch_reduction: ``"mean"`` or ``"sum"``.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((1, 2), 500.0)
        >>> layer = Layer({"n": LIF(1)}, {"in": ("input", "n", Linear(2, 1, weight=w))})
        >>> rule = TripletSTDP()
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> for _ in range(3):
        ...     _ = layer(input=torch.tensor([[True, False]])); rule()
        >>> bool(layer.connections["in"].updater.pending)
        True
    """

    def __init__(
        self,
        lr2_post: float = 5e-10,
        lr3_post: float = 6.2e-3,
        lr2_pre: float = -7e-3,
        lr3_pre: float = -2.3e-4,
        tau_plus: float = 16.8,
        tau_x: float = 101.0,
        tau_minus: float = 33.7,
        tau_y: float = 125.0,
        trace_mode: str = "cumulative",
        batch_reduction: str = "mean",
    ) -> None:
        super().__init__(
            lr2_post=lr2_post,
            lr3_post=lr3_post,
            lr2_pre=lr2_pre,
            lr3_pre=lr3_pre,
            tau_plus=tau_plus,
            tau_x=tau_x,
            tau_minus=tau_minus,
            tau_y=tau_y,
            trace_mode=trace_mode,
            batch_reduction=batch_reduction,
        )

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return check_common(hyperparameters, ("tau_plus", "tau_x", "tau_minus", "tau_y"))

    def add_monitors(self, name: str, state: CellState) -> None:
        mode = state.trace_mode
        for monitor, attr, tau in (
            ("r1", PRE, state.tau_plus),
            ("r2", PRE, state.tau_x),
            ("o1", POST, state.tau_minus),
            ("o2", POST, state.tau_y),
        ):
            self.add_monitor(name, monitor, attr, Monitor.partial(Trace, tau=tau, mode=mode))
        self.add_monitor(name, "spike_pre", PRE, Monitor.partial(Latest))
        self.add_monitor(name, "spike_post", POST, Monitor.partial(Latest))
        state.register_buffer("r2_previous", torch.empty(0), persistent=False)
        state.register_buffer("o2_previous", torch.empty(0), persistent=False)

    def clear(self, **kwargs: Any) -> None:
        """Clear the monitors and the remembered slow traces."""
        super().clear(**kwargs)
        for _, state in self.cells:
            state.r2_previous = torch.empty(0, device=state.r2_previous.device)
            state.o2_previous = torch.empty(0, device=state.o2_previous.device)

    def learn_cell(
        self, name: str, cell: Cell, state: CellState, monitors: dict[str, Monitor]
    ) -> None:
        """Add the cell's triplet terms of this step."""
        post, pre = monitors["spike_post"].peek(), monitors["spike_pre"].peek()
        r1, r2 = monitors["r1"].peek(), monitors["r2"].peek()
        o1, o2 = monitors["o1"].peek(), monitors["o2"].peek()
        if any(x is None for x in (post, pre, r1, r2, o1, o2)):
            return
        dt = cell.layer.dt
        o2_before = _before(state.o2_previous, o2, dt, state.tau_y)
        r2_before = _before(state.r2_previous, r2, dt, state.tau_x)
        state.o2_previous, state.r2_previous = o2, r2
        dtype = cell.connection.weight.dtype
        post, pre = post.to(dtype), pre.to(dtype)
        correlate, reduction = cell.connection.correlate, state.batch_reduction
        update = cell.updater.weight
        add_scaled(update, state.lr2_post, correlate(post, r1, reduction), reduction)
        add_scaled(update, state.lr3_post, correlate(post * o2_before, r1, reduction), reduction)
        add_scaled(update, state.lr2_pre, correlate(o1, pre, reduction), reduction)
        add_scaled(update, state.lr3_pre, correlate(o1, pre * r2_before, reduction), reduction)


def _before(previous: torch.Tensor, now: torch.Tensor, dt: float, tau: float) -> torch.Tensor:
    """The trace just before this step's spike: last step's value decayed by one step."""
    if previous.shape != now.shape:
        return torch.zeros_like(now)
    return decayed(previous, decay_fraction(dt, tau))
