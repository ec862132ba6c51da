"""STDP as pure functions: tensors and numbers in, correlation terms out.

Nothing here reads a monitor or a reducer; :class:`~celltrain.learn.STDP` passes the window's
spikes, the traces' values before the window and its own time constants.
"""

from __future__ import annotations

import math

import torch

from celltrain.neural import Connection
from celltrain.utils.filters import decay_powers
from celltrain.utils.spikes import spikes_as


def window_pairs(
    connection: Connection,
    spike_post: torch.Tensor,
    spike_pre: torch.Tensor,
    start_pre: torch.Tensor,
    start_post: torch.Tensor,
    *,
    tau_pre: float,
    tau_post: float,
    dt: float,
    amplitude_pre: float = 1.0,
    amplitude_post: float = 1.0,
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
        connection: the cell's connection (its ``correlate`` pairs the rows; its ``weight``
            gives the terms' shape and dtype).
        spike_post: ``(T, B, *out_shape)`` bool, the postsynaptic spikes of the window.
        spike_pre: ``(T, B, *in_shape)`` bool, the presynaptic spikes of the window.
        start_pre: ``(B, *in_shape)``, the presynaptic trace just before the window (``c1``).
        start_post: ``(B, *out_shape)``, the postsynaptic trace just before it (``c2``).
        tau_pre: the presynaptic trace's time constant (ms, > 0).
        tau_post: the postsynaptic trace's time constant (ms, > 0).
        dt: the step (ms, > 0).
        amplitude_pre: what a presynaptic spike adds to its trace (``a1``).
        amplitude_post: what a postsynaptic spike adds to its trace (``a2``).
        post_scale: ``(B,)`` factor per sample (e.g. a reward), or None.

    Returns:
        ``(sum post (x) trace_pre, sum trace_post (x) pre)``, each of the weight's shape,
        summed (not averaged) over the batch.
    """
    steps, batch = spike_post.shape[:2]
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
    causal = torch.where(lag >= 0, torch.exp(-lag * (dt / tau_pre)), 0.0)
    anti = torch.where(lag <= 0, torch.exp(lag * (dt / tau_post)), 0.0)
    carry = decay_powers(steps, math.exp(-dt / tau_post), dtype, device)
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
        pos = connection.correlate(post_rows, before, "sum").mul_(amplitude_pre)
        neg = connection.correlate(post_rows, after, "sum").mul_(amplitude_post)
    else:
        pos = torch.zeros_like(connection.weight)
        neg = torch.zeros_like(connection.weight)

    # what the traces carried into the window
    if bool(start_pre.any()):
        decay = decay_powers(steps, math.exp(-dt / tau_pre), dtype, device)
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
