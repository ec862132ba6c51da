"""Pair-based spike-timing-dependent plasticity."""

from __future__ import annotations

from typing import Any

import torch

from celltrain.learn.checks import check_common
from celltrain.learn.functional.stdp import window_pairs
from celltrain.learn.terms import add_scaled
from celltrain.learn.trainer import CellState, IndependentCellTrainer
from celltrain.neural import Cell
from celltrain.observe import Latest, Monitor, Trace

PRE = "connection.synapse.spike"
POST = "neuron.spike"


class PairBasedSTDP(IndependentCellTrainer):
    """What the pair-based STDP rules share (:class:`STDP`, :class:`~celltrain.learn.MSTDP`,
    :class:`~celltrain.learn.MSTDPET`): the unit-amplitude trace monitors of a cell and its two
    STDP correlations (:meth:`stdp_terms`). A subclass writes ``__init__`` (its
    hyperparameters, including ``lr_post``, ``lr_pre``, ``tau_pre``, ``tau_post``,
    ``trace_mode`` and ``batch_reduction``) and :meth:`learn_cell`.

    Monitors per cell: ``trace_pre``, ``trace_post`` (:class:`~celltrain.observe.Trace`),
    ``spike_pre``, ``spike_post`` (:class:`~celltrain.observe.Latest`).

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((2, 3), 500.0)
        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(3, 2, weight=w))})
        >>> rule = STDP()  # a PairBasedSTDP
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> _ = layer(input=torch.ones(1, 3, dtype=torch.bool))
        >>> post_pre, _ = rule.stdp_terms("in")  # coincident spikes pair with the traces' own step
        >>> post_pre
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
    """

    #: time constants (ms) among the hyperparameters, checked to be finite and > 0
    time_constants: tuple[str, ...] = ("tau_pre", "tau_post")

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return check_common(hyperparameters, self.time_constants)

    def add_monitors(self, name: str, state: CellState) -> None:
        mode = state.trace_mode
        self.add_monitor(
            name, "trace_pre", PRE, Monitor.partial(Trace, tau=state.tau_pre, mode=mode)
        )
        self.add_monitor(
            name, "trace_post", POST, Monitor.partial(Trace, tau=state.tau_post, mode=mode)
        )
        self.add_monitor(name, "spike_pre", PRE, Monitor.partial(Latest))
        self.add_monitor(name, "spike_post", POST, Monitor.partial(Latest))

    def stdp_terms(
        self,
        name: str,
        post_scale: torch.Tensor | None = None,
        reduction: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The two correlations of cell ``name`` over the latest recorded step(s), before
        learning rates.

        Returns ``(post spikes (x) trace_pre, trace_post (x) pre spikes)`` in the weight's
        shape, batch-reduced and summed over the steps the monitors recorded last (one step of
        ``layer(...)``, or every step of a ``layer.run(...)`` window), or None before the
        monitors observed anything. ``post_scale`` ``(B,)`` multiplies each sample's terms
        (e.g. a per-sample reward). ``reduction`` overrides the cell's ``batch_reduction``
        (``"none"``: one term per sample, ``(B, *weight.shape)``).

        Raises:
            RuntimeError: the cell's monitors hold windows of different lengths (they were
                added between two layer calls; call the rule after every layer call).
        """
        cell, state = self.get_cell(name)
        by_name = self.monitors_of(name)
        monitors = [by_name[m] for m in ("spike_post", "trace_pre", "trace_post", "spike_pre")]
        if any(monitor.peek() is None for monitor in monitors):
            return None  # e.g. a cell added after this step's monitors recorded
        reduction = state.batch_reduction if reduction is None else reduction
        windows = [monitor.window() for monitor in monitors]
        if (
            reduction != "none"
            and state.trace_mode == "cumulative"
            and all(w is not None and w.steps > 1 for w in windows)
            and len({w.steps for w in windows}) == 1
        ):
            post, pre = windows[0].values, windows[3].values
            terms = window_pairs(
                cell.connection,
                post,
                pre,
                windows[1].start,
                windows[2].start,
                tau_pre=state.tau_pre,
                tau_post=state.tau_post,
                dt=cell.layer.dt,
                post_scale=post_scale,
            )
            if reduction == "mean":
                batch = post.shape[1]
                terms = (terms[0] / batch, terms[1] / batch)
            return terms
        spike_post, spike_pre = monitors[0].recent(), monitors[3].recent()
        trace_pre, trace_post = monitors[1].recent(), monitors[2].recent()
        windows = (spike_post, trace_pre, trace_post, spike_pre)
        if len({w.shape[0] for w in windows}) != 1:
            raise RuntimeError(
                f"cell {name!r}: its monitors recorded windows of different lengths "
                f"{[w.shape[0] for w in windows]}; call the rule after every layer call"
            )
        dtype = cell.connection.weight.dtype
        spike_post, trace_post = spike_post.to(dtype), trace_post.to(dtype)
        if post_scale is not None:
            shape = (1, -1) + (1,) * (spike_post.dim() - 2)
            spike_post = spike_post * post_scale.view(shape)
            trace_post = trace_post * post_scale.view(shape)
        correlate = cell.connection.correlate_window
        return (
            correlate(spike_post, trace_pre, reduction),
            correlate(trace_post, spike_pre.to(dtype), reduction),
        )


class STDP(PairBasedSTDP):
    """Pair-based STDP driven by unit-amplitude spike traces.

    Each time step (one ``forward()`` call after the layer stepped):

    - at each postsynaptic spike: ``lr_post * trace_pre`` (the pre spikes' trace, time constant
      ``tau_pre``),
    - at each presynaptic spike: ``lr_pre * trace_post`` (time constant ``tau_post``),

    summed over the pairs the connection links with ``connection.correlate`` (so it works for
    every connection kind) and reduced over the batch (``batch_reduction``: mean or sum).
    Positive terms go to the weight updater's ``pos``, negative ones to ``neg``; nothing is
    applied until ``update()``. Signs select the rule: Hebbian ``lr_post > 0 > lr_pre``,
    anti-Hebbian ``lr_post < 0 < lr_pre``, potentiation-only both > 0, depression-only both < 0.

    For a pre spike at ``t_pre`` and a post spike at ``t_post`` (``dt_s = t_post - t_pre``):
    ``dt_s > 0`` gives ``lr_post * exp(-dt_s / tau_pre)``, ``dt_s < 0`` gives
    ``lr_pre * exp(dt_s / tau_post)``, and coincident spikes give ``lr_post + lr_pre`` (a trace
    already holds the spike of its own step). ``trace_mode="nearest"`` resets traces to 1 at a
    spike (nearest-neighbour pairing) instead of adding 1 (all-to-all).

    Monitors per cell: ``trace_pre``, ``trace_post`` (:class:`~celltrain.observe.Trace`),
    ``spike_pre``, ``spike_post`` (:class:`~celltrain.observe.Latest`).

    Args:
        lr_post: learning rate at postsynaptic spikes (weight units per pair).
        lr_pre: learning rate at presynaptic spikes (weight units per pair).
        tau_pre: presynaptic trace time constant (ms, > 0).
        tau_post: postsynaptic trace time constant (ms, > 0).
        trace_mode: ``"cumulative"`` or ``"nearest"``.
        batch_reduction: ``"mean"`` or ``"sum"`` over the batch.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((1, 2), 500.0)
        >>> layer = Layer({"n": LIF(1)}, {"in": ("input", "n", Linear(2, 1, weight=w))})
        >>> stdp = STDP(lr_post=0.01, lr_pre=-0.005)
        >>> _ = stdp.register_cell("in", layer.cell("in"))
        >>> _ = layer.run(input=torch.tensor([[[True, False]], [[False, False]]]))
        >>> stdp(); stdp.update()  # one post spike, coincident with input 0: lr_post + lr_pre
        >>> layer.connections["in"].weight.data - 500.0
        tensor([[0.0050, 0.0000]])
    """

    def __init__(
        self,
        lr_post: float = 1e-2,
        lr_pre: float = -1e-2,
        tau_pre: float = 20.0,
        tau_post: float = 20.0,
        trace_mode: str = "cumulative",
        batch_reduction: str = "mean",
    ) -> None:
        super().__init__(
            lr_post=lr_post,
            lr_pre=lr_pre,
            tau_pre=tau_pre,
            tau_post=tau_post,
            trace_mode=trace_mode,
            batch_reduction=batch_reduction,
        )

    #: one call after a multi-step Layer.run learns every step of the window at once
    learns_windows = True

    def learn_cell(
        self, name: str, cell: Cell, state: CellState, monitors: dict[str, Monitor]
    ) -> None:
        """Add the STDP terms of the cell's latest step (or ``layer.run`` window) to its weight
        updater."""
        terms = self.stdp_terms(name)
        if terms is None:
            return
        update = cell.updater.weight
        add_scaled(update, state.lr_post, terms[0], state.batch_reduction)
        add_scaled(update, state.lr_pre, terms[1], state.batch_reduction)
