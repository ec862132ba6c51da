"""Connections: weighted maps from a source population's spikes to a target's current.

A connection owns ``weight`` (and optionally ``bias``) as ``nn.Parameter(requires_grad=False)``,
a :class:`~celltrain.neural.synapses.Synapse`, and an :class:`~celltrain.neural.updater.Updater`
for its trainable parameters. ``forward(spike)`` maps source spikes ``(B, *in_shape)`` (bool) to
the target current ``(B, *out_shape)`` (nA). ``correlate(post, pre)`` is what learning rules are
written against: the batch-reduced sum of ``post (x) pre`` over exactly the (post, pre) pairs
the weight links, in the weight's shape, computed without a ``(B, out, in)`` tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from celltrain.neural.synapses import DeltaCurrent, Synapse
from celltrain.neural.updater import Bounding, Constraint, Updater
from celltrain.neural.window import HookedModule
from celltrain.utils.checks import batched, shape_of
from celltrain.utils.gradient import gradient_free


def _reduce(total: torch.Tensor, batch: int, reduction: str) -> torch.Tensor:
    return total / batch if reduction == "mean" else total


class Connection(HookedModule):
    """Base class of connections.

    Args:
        in_shape: shape of the source population (without batch).
        out_shape: shape of the target population (without batch).
        weight_shape: shape of ``weight``.
        weight: initial weight (``weight_shape``); default uniform in ``weight_range``.
        weight_range: ``(low, high)`` of the default uniform initialisation.
        synapse: the synapse model (default :class:`DeltaCurrent`).
        bound: bound applied to weight updates (default unbounded), e.g. ``SoftBound(0, 1)``.
        constraints: run on the weight after each update, e.g. ``[Normalize(78.0)]``.
        bias: whether the target gets a learnable bias current (``out_shape``, nA).

    Example::

        >>> connection = Linear(2, 1, weight=torch.tensor([[1.0, 2.0]]))  # a Connection
        >>> connection(torch.tensor([[True, True]]))
        tensor([[3.]])
        >>> connection.correlate(torch.ones(1, 1), torch.tensor([[1.0, 0.0]]))
        tensor([[1., 0.]])
    """

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: int | Sequence[int],
        weight_shape: Sequence[int],
        *,
        weight: torch.Tensor | None = None,
        weight_range: tuple[float, float] = (0.0, 1.0),
        synapse: Synapse | None = None,
        bound: Bounding | None = None,
        constraints: Iterable[Constraint] = (),
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = shape_of("in_shape", in_shape)
        self.out_shape = shape_of("out_shape", out_shape)
        weight_shape = tuple(weight_shape)
        if weight is None:
            low, high = (float(v) for v in weight_range)
            if high < low:
                raise ValueError(
                    f"weight_range must be (low, high) with low <= high, got {weight_range!r}"
                )
            weight = torch.empty(weight_shape).uniform_(low, high)
        elif tuple(weight.shape) != weight_shape:
            raise ValueError(f"weight must have shape {weight_shape}, got {tuple(weight.shape)}")
        self.weight = nn.Parameter(
            weight.detach().clone().to(torch.get_default_dtype()), requires_grad=False
        )
        self.bias = nn.Parameter(torch.zeros(self.out_shape), requires_grad=False) if bias else None
        self.synapse = synapse if synapse is not None else DeltaCurrent()
        spec = {"weight": (bound, constraints)}
        if bias:
            spec["bias"] = (None, ())
        self.updater = Updater(self, spec)

    @gradient_free
    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Map source spikes ``(B, *in_shape)`` (bool) to target current ``(B, *out_shape)``."""
        batched("spike", spike, self.in_shape)
        self.synapse.prepare("spike", spike)
        return self.advance(spike)

    def advance(self, spike: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without argument checks (the synapse state must exist): the inner
        loop of :meth:`~celltrain.neural.Layer.run`."""
        current = self.propagate(self.synapse.advance(spike))
        if self.bias is not None:
            current = current + self.bias
        return current

    def begin_window(self) -> None:
        """Called by :meth:`~celltrain.neural.Layer.run` before it steps a window (the
        parameters do not change until :meth:`end_window`); nothing by default."""

    def end_window(self) -> None:
        """Called by :meth:`~celltrain.neural.Layer.run` after the window."""

    def accumulate(self, total: torch.Tensor | None, spike: torch.Tensor) -> torch.Tensor:
        """``total + advance(spike)`` (just ``advance(spike)`` when ``total`` is None): the
        current of this connection added to the current that already reaches the target, in
        one operation where the connection can (a fused ``addmm`` for :class:`Linear`)."""
        current = self.advance(spike)
        return current if total is None else total + current

    @gradient_free
    def run(self, spikes: torch.Tensor) -> torch.Tensor:
        """Map ``T`` steps of source spikes at once; same as ``T`` calls of :meth:`forward`.

        The synapse runs its ``T`` steps first, then one :meth:`propagate` maps all ``T * B``
        presynaptic currents (a single matrix product for :class:`Linear`).

        Args:
            spikes: source spikes ``(T, B, *in_shape)``, bool.

        Returns:
            target current of each step, ``(T, B, *out_shape)`` (nA).
        """
        if spikes.dim() < 2 or spikes.shape[0] < 1:
            raise ValueError(
                f"spikes must be (T, B, *in_shape) with T >= 1 steps, got shape "
                f"{tuple(spikes.shape)}"
            )
        batched("spikes[0]", spikes[0], self.in_shape)
        steps, batch = spikes.shape[:2]
        current = self.propagate(self.synapse.run(spikes).flatten(0, 1))
        if self.bias is not None:
            current = current + self.bias
        return current.view(steps, batch, *self.out_shape)

    def propagate(self, current: torch.Tensor) -> torch.Tensor:
        """Map the presynaptic current ``(B, *in_shape)`` through the weight."""
        raise NotImplementedError

    @gradient_free
    def correlate(
        self, post: torch.Tensor, pre: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Batch-reduced sum of ``post (x) pre`` over the pairs the weight links.

        Args:
            post: a target-side quantity ``(B, *out_shape)`` (e.g. spikes or a trace).
            pre: a source-side quantity ``(B, *in_shape)``.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for one result per
                sample, ``(B, *weight.shape)`` (this one does hold a batch of weight-sized
                tensors; rules that need per-sample eligibility use it).

        Returns:
            tensor of the weight's shape (``(B, *weight.shape)`` for ``"none"``).
        """
        batch = batched("post", post, self.out_shape)
        if batched("pre", pre, self.in_shape) != batch:
            raise ValueError(
                f"post and pre must have the same batch size, got {batch} and {pre.shape[0]}"
            )
        dtype = self.weight.dtype
        post, pre = post.to(dtype), pre.to(dtype)
        if reduction == "none":
            return torch.stack(
                [self.pair_sum(post[b : b + 1], pre[b : b + 1]) for b in range(batch)]
            )
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return _reduce(self.pair_sum(post, pre), batch, reduction)

    def correlate_window(
        self, post: torch.Tensor, pre: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """:meth:`correlate` summed over the ``T`` steps of a window, in one product.

        Args:
            post: ``(T, B, *out_shape)``.
            pre: ``(T, B, *in_shape)``.
            reduction: over the batch, as for :meth:`correlate` (``"mean"`` divides by ``B``,
                not by ``T * B``; ``"none"`` gives ``(B, *weight.shape)``).

        Returns:
            ``sum_t correlate(post[t], pre[t], reduction)``, the weight's shape (or
            ``(B, *weight.shape)``).
        """
        if post.dim() < 2 or post.shape[:2] != pre.shape[:2]:
            raise ValueError(
                "post and pre must be windows (T, B, ...) with the same T and B, got shapes "
                f"{tuple(post.shape)} and {tuple(pre.shape)}"
            )
        steps, batch = post.shape[:2]
        if steps == 1:
            return self.correlate(post[0], pre[0], reduction)
        if reduction == "none":
            each = self.correlate(post.flatten(0, 1), pre.flatten(0, 1), "none")
            return each.view(steps, batch, *each.shape[1:]).sum(0)
        total = self.correlate(post.flatten(0, 1), pre.flatten(0, 1), "sum")
        if reduction == "mean":
            return total / batch
        if reduction != "sum":
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return total

    def pair_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of ``post (x) pre`` for linked pairs (weight shape)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


class Linear(Connection):
    """Dense all-to-all connection: ``weight`` is ``(prod(out_shape), prod(in_shape))``.

    Example::

        >>> linear = Linear(3, 2, weight=torch.ones(2, 3))
        >>> linear(torch.tensor([[True, False, True]]))
        tensor([[2., 2.]])
    """

    def __init__(
        self, in_shape: int | Sequence[int], out_shape: int | Sequence[int], **kwargs
    ) -> None:
        ins, outs = shape_of("in_shape", in_shape), shape_of("out_shape", out_shape)
        super().__init__(ins, outs, (math.prod(outs), math.prod(ins)), **kwargs)

    def weight_t(self) -> torch.Tensor:
        """The weight as propagation multiplies it, ``(prod(in_shape), prod(out_shape))``."""
        return self.weight.t()

    def propagate(self, current: torch.Tensor) -> torch.Tensor:
        if current.dim() == 2 and len(self.out_shape) == 1:
            return current @ self.weight_t()
        flat = current.reshape(current.shape[0], -1) @ self.weight_t()
        return flat.reshape(current.shape[0], *self.out_shape)

    def accumulate(self, total: torch.Tensor | None, spike: torch.Tensor) -> torch.Tensor:
        if total is None or self.bias is not None or total.dim() != 2 or spike.dim() != 2:
            return super().accumulate(total, spike)
        return torch.addmm(total, self.synapse.advance(spike), self.weight_t())

    def pair_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return post.reshape(post.shape[0], -1).t() @ pre.reshape(pre.shape[0], -1)


class Lateral(Linear):
    """All-to-all connection within one population, without self-connections.

    ``weight`` is ``(n, n)`` with ``n = prod(shape)``; its diagonal is kept at zero (it links
    no pair), in propagation, in ``correlate`` and after every update.

    Example::

        >>> lateral = Lateral(3, weight_range=(-1.0, -1.0))  # every other neuron, not itself
        >>> lateral(torch.tensor([[True, False, False]]))
        tensor([[ 0., -1., -1.]])
    """

    def __init__(self, shape: int | Sequence[int], **kwargs) -> None:
        given = kwargs.get("weight")
        if given is not None and given.dim() == 2 and bool(given.diagonal().any()):
            raise ValueError(
                "weight of a Lateral connection must have a zero diagonal "
                "(no self-connections), got non-zero diagonal entries"
            )
        super().__init__(shape, shape, **kwargs)
        n = self.weight.shape[0]
        self.register_buffer("mask", ~torch.eye(n, dtype=torch.bool), persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)
        self._masked: torch.Tensor | None = None  # (weight * mask).t() during a window
        # Zero the diagonal before the user's constraints (so that e.g. Normalize sees no
        # self-weight that a bound such as HardBound(minimum > 0) put there) and after them.
        self.updater.weight.constraints.insert(0, self._zero_diagonal)
        self.updater.weight.constraints.append(self._zero_diagonal)

    def _zero_diagonal(self, param: torch.Tensor) -> None:
        param.mul_(self.mask)

    def weight_t(self) -> torch.Tensor:
        """``(weight * mask).t()``: the weight as propagation uses it (masked there too, so a
        weight loaded or edited with a non-zero diagonal links no self). Within a
        :meth:`~celltrain.neural.Layer.run` window, where the weight cannot change, it is
        formed once (see :meth:`begin_window`)."""
        masked = self._masked
        return masked if masked is not None else (self.weight * self.mask).t()

    def begin_window(self) -> None:
        self.__dict__["_masked"] = (self.weight * self.mask).t()

    def end_window(self) -> None:
        self.__dict__["_masked"] = None

    def pair_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return super().pair_sum(post, pre) * self.mask


class Direct(Connection):
    """One-to-one connection: ``weight`` has the population's shape, ``current = w * pre``.

    Example::

        >>> direct = Direct(3, weight=torch.tensor([1.0, 2.0, 3.0]))
        >>> direct(torch.tensor([[True, False, True]]))
        tensor([[1., 0., 3.]])
    """

    def __init__(self, shape: int | Sequence[int], **kwargs) -> None:
        dims = shape_of("shape", shape)
        if kwargs.get("bias"):
            raise ValueError("Direct does not take bias=True: use a Linear connection")
        super().__init__(dims, dims, dims, **kwargs)

    def propagate(self, current: torch.Tensor) -> torch.Tensor:
        return current * self.weight

    def pair_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return (post * pre).sum(0)


class Conv2d(Connection):
    """2-D convolution from ``(C, H, W)`` maps to ``(out_channels, H', W')`` maps.

    ``weight`` is ``(out_channels, C, kh, kw)``. ``correlate`` unfolds the source into patches
    and forms one matrix product, ``(out_channels, B*L) @ (B*L, C*kh*kw)``.

    Args:
        in_shape: ``(C, H, W)`` of the source.
        out_channels: number of output maps.
        kernel_size: int or ``(kh, kw)``.
        stride: int or ``(sh, sw)``.
        padding: int or ``(ph, pw)`` (zero padding).
        **kwargs: as for :class:`Connection` (weight, weight_range, synapse, bound,
            constraints, bias).

    Example::

        >>> conv = Conv2d((1, 4, 4), 2, 3, weight=torch.ones(2, 1, 3, 3))
        >>> conv(torch.ones(1, 1, 4, 4, dtype=torch.bool)).shape
        torch.Size([1, 2, 2, 2])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        **kwargs,
    ) -> None:
        ins = shape_of("in_shape", in_shape)
        if len(ins) != 3:
            raise ValueError(f"in_shape must be (channels, height, width), got {in_shape!r}")
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        size = [
            (ins[1 + i] + 2 * self.padding[i] - self.kernel_size[i]) // self.stride[i] + 1
            for i in range(2)
        ]
        if min(size) < 1:
            raise ValueError(
                f"kernel_size={self.kernel_size} with padding={self.padding} does not fit "
                f"in_shape={ins}"
            )
        outs = (shape_of("out_channels", out_channels)[0], *size)
        super().__init__(ins, outs, (outs[0], ins[0], *self.kernel_size), **kwargs)

    def propagate(self, current: torch.Tensor) -> torch.Tensor:
        return F.conv2d(current, self.weight, stride=self.stride, padding=self.padding)

    def pair_sum(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(pre, self.kernel_size, padding=self.padding, stride=self.stride)
        out = self.out_shape[0]
        post_flat = post.reshape(post.shape[0], out, -1).transpose(0, 1).reshape(out, -1)
        patch_flat = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        return (post_flat @ patch_flat).reshape(self.weight.shape)


def _pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]
