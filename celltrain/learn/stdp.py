"""Pair-based spike-timing-dependent plasticity."""

from __future__ import annotations

import math
from typing import Any

import torch

from celltrain.learn.checks import check_common
from celltrain.learn.terms import add_scaled
from celltrain.learn.trainer import CellState, IndependentCellTrainer
from celltrain.neural import Connection
from celltrain.observe import Latest, Monitor, Trace
from celltrain.utils.filters import decay_powers
from celltrain.utils.spikes import spikes_as

PRE = "connection.synapse.spike"
POST = "neuron.spike"


class STDP(IndependentCellTrainer):
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

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return check_common(hyperparameters, ("tau_pre", "tau_post"))

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
        get = self.pool.get_monitor
        monitors = [get(name, m) for m in ("spike_post", "trace_pre", "trace_post", "spike_pre")]
        if any(monitor.peek() is None for monitor in monitors):
            return None  # e.g. a cell added after this step's monitors recorded
        spike_post, spike_pre = monitors[0].recent(), monitors[3].recent()
        traces = (monitors[1].reducer, monitors[2].reducer)
        reduction = state.batch_reduction if reduction is None else reduction
        if (
            spike_post.shape[0] > 1
            and spike_pre.shape[0] == spike_post.shape[0]
            and reduction != "none"
            and all(t.mode == "cumulative" and t.window_start() is not None for t in traces)
        ):
            terms = window_pairs(
                cell.connection,
                spike_post,
                spike_pre,
                traces,
                cell.layer.dt,
                post_scale,
            )
            if reduction == "mean":
                batch = spike_post.shape[1]
                terms = (terms[0] / batch, terms[1] / batch)
            return terms
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

    #: forward() learns every step of a multi-step Layer.run window at once
    learns_windows = True

    def forward(self) -> None:
        """Add the STDP terms of the latest step (or ``layer.run`` window) of every cell to its
        weight updater (training mode only)."""
        if not self.training:
            return
        for name in list(self._cells):
            cell, state = self.get_cell(name)
            terms = self.stdp_terms(name)
            if terms is None:
                continue
            update = cell.updater.weight
            add_scaled(update, state.lr_post, terms[0], state.batch_reduction)
            add_scaled(update, state.lr_pre, terms[1], state.batch_reduction)


def window_pairs(
    connection: Connection,
    spike_post: torch.Tensor,
    spike_pre: torch.Tensor,
    traces: tuple[Trace, Trace],
    dt: float,
    post_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both STDP correlations of a window of ``T`` steps, summed over steps and samples, in
    closed form and in work proportional to the postsynaptic spikes.

    With cumulative traces, ``trace_pre[t] = d1^t c1 + a1 sum_{s<=t} d1^(t-s) pre[s]`` and
    ``trace_post[t] = d2^t c2 + a2 sum_{s<=t} d2^(t-s) post[s]`` (``c``: the values carried
    into the window, ``a``: the traces' amplitudes). Hence

    - ``sum_t post[t] (x) trace_pre[t] = sum_t post[t] (x) (a1 sum_{s<=t} d1^(t-s) pre[s])
      + (sum_t d1^t post[t]) (x) c1``,
    - ``sum_t trace_post[t] (x) pre[t] = sum_s post[s] (x) (a2 sum_{t>=s} d2^(t-s) pre[t])
      + c2 (x) (sum_t d2^t pre[t])``:

    both pair each step that has a postsynaptic spike with a causal or anti-causal filter of
    the same sample's presynaptic train. Only those steps are formed (one batched matrix
    product per window), so nothing of size ``T x B x in`` is built but one float copy of the
    presynaptic spikes, and nothing is looped over per step.

    Args:
        connection: the cell's connection (its ``correlate`` pairs the rows).
        spike_post: ``(T, B, *out_shape)`` bool, the postsynaptic spikes of the window.
        spike_pre: ``(T, B, *in_shape)`` bool, the presynaptic spikes of the window.
        traces: the cumulative ``Trace`` reducers of the pre and the post spikes, after they
            folded this window (their ``tau``, ``amplitude`` and ``window_start()`` are used).
        dt: the step (ms).
        post_scale: ``(B,)`` factor per sample (e.g. a reward), or None.

    Returns:
        ``(sum post (x) trace_pre, sum trace_post (x) pre)``, each of the weight's shape,
        summed (not averaged) over the batch.
    """
    steps, batch = spike_post.shape[:2]
    trace_pre, trace_post = traces
    dtype = connection.weight.dtype
    device = spike_post.device
    post = spike_post.reshape(steps, batch, -1)
    pre = spike_pre.reshape(steps, batch, -1)
    scale = None if post_scale is None else post_scale.to(dtype)

    # the (sample, step) pairs with a postsynaptic spike, k-th of its sample at [b, k]
    rows = post.any(-1).t()  # (B, T)
    sample, step = rows.nonzero(as_tuple=True)  # sorted by sample, then step
    counts = rows.sum(1)
    most = int(counts.max()) if sample.numel() else 0
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(sample.numel(), device=device) - first[sample]
    times = torch.zeros((batch, max(most, 1)), dtype=torch.long, device=device)
    times[sample, slot] = step

    # filters of each row: causal (pre before or at the post spike), anti-causal (after or at
    # it), and one row carrying the post trace's start, d2^t
    lag = (times.unsqueeze(-1) - torch.arange(steps, device=device)).to(dtype)  # t_post - s
    causal = torch.where(lag >= 0, torch.exp(-lag * (dt / trace_pre.tau)), 0.0)
    anti = torch.where(lag <= 0, torch.exp(lag * (dt / trace_post.tau)), 0.0)
    carry = decay_powers(steps, math.exp(-dt / trace_post.tau), dtype, device)
    filters = torch.cat((causal, anti, carry.expand(batch, 1, steps)), 1)  # (B, 2K + 1, T)
    filtered = torch.bmm(filters, spikes_as(pre, dtype).transpose(0, 1))  # (B, 2K + 1, in)

    in_shape, out_shape = connection.in_shape, connection.out_shape
    post_rows = post[step, sample].to(dtype)
    if scale is not None:
        post_rows = post_rows * scale[sample].unsqueeze(-1)
    k = max(most, 1)
    before = filtered[:, :k][sample, slot].view(-1, *in_shape)
    after = filtered[:, k : 2 * k][sample, slot].view(-1, *in_shape)
    post_rows = post_rows.view(-1, *out_shape)
    if sample.numel():
        pos = connection.correlate(post_rows, before, "sum").mul_(trace_pre.amplitude)
        neg = connection.correlate(post_rows, after, "sum").mul_(trace_post.amplitude)
    else:
        pos = torch.zeros_like(connection.weight)
        neg = torch.zeros_like(connection.weight)

    # what the traces carried into the window
    start_pre, start_post = trace_pre.window_start(), trace_post.window_start()
    if bool(start_pre.any()):
        decay = decay_powers(steps, math.exp(-dt / trace_pre.tau), dtype, device)
        decayed_post = (decay @ post.reshape(steps, -1).to(dtype)).view(batch, -1)
        if scale is not None:
            decayed_post = decayed_post * scale.unsqueeze(-1)
        pos = pos + connection.correlate(
            decayed_post.view(batch, *out_shape), start_pre.to(dtype), "sum"
        )
    if bool(start_post.any()):
        carried = start_post.to(dtype).reshape(batch, -1)
        if scale is not None:
            carried = carried * scale.unsqueeze(-1)
        decayed_pre = filtered[:, 2 * k].view(batch, *in_shape)
        neg = neg + connection.correlate(carried.view(batch, *out_shape), decayed_pre, "sum")
    return pos, neg
