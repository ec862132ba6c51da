"""Reward-modulated STDP (Florian 2007): MSTDP and MSTDPET."""

from __future__ import annotations

from typing import Any

import torch

from celltrain.learn.stdp import STDP, PairBasedSTDP
from celltrain.learn.terms import add_signed
from celltrain.learn.trainer import CellState
from celltrain.neural import Cell
from celltrain.observe import Monitor
from celltrain.utils.filters import decay_fraction, decayed


def reward_per_sample(reward: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Return the reward as a ``(batch,)`` tensor; a scalar applies to every sample.

    Raises:
        ValueError: ``reward`` is neither a scalar nor of shape ``(batch,)``, or not finite.
    """
    value = torch.as_tensor(reward, dtype=like.dtype, device=like.device)
    if value.dim() == 0:
        value = value.expand(batch)
    elif tuple(value.shape) != (batch,):
        raise ValueError(
            f"reward must be a scalar or have shape ({batch},) (one per sample), "
            f"got shape {tuple(value.shape)}"
        )
    if not torch.isfinite(value).all():
        raise ValueError("reward must be finite")
    return value


class MSTDP(STDP):
    """Modulated STDP (Florian 2007, eq. for MSTDP).

    With unit traces and ``lr_post = gamma * A+``, ``lr_pre = gamma * A-``, each step's STDP
    term ``zeta(t) = lr_post * post(t) (x) trace_pre(t) + lr_pre * trace_post(t) (x) pre(t)`` is
    scaled by the reward given to that step's ``forward(reward)``:
    ``dw = reward * zeta(t)``, per sample, then reduced over the batch (``batch_reduction``).
    The positive part goes to the updater's ``pos``, the negative part to ``neg``.

    Args: as for :class:`~celltrain.learn.STDP`.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((1, 2), 500.0)
        >>> layer = Layer({"n": LIF(1)}, {"in": ("input", "n", Linear(2, 1, weight=w))})
        >>> rule = MSTDP(lr_post=0.01, lr_pre=-0.01)
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> _ = layer(input=torch.tensor([[True, False]]))
        >>> rule(reward=-1.0)  # a punished coincidence depresses the weight
        >>> layer.connections["in"].updater.weight.neg
        tensor([[0., 0.]])
    """

    #: a reward belongs to one step: call the rule after every ``layer(...)`` step
    learns_windows = False

    def forward(self, reward: float | torch.Tensor) -> None:
        """Add this step's reward-modulated terms of every cell (training mode only).

        Args:
            reward: a scalar or one value per sample ``(B,)`` (dimensionless).
        """
        super().forward(reward)

    def learn_cell(
        self,
        name: str,
        cell: Cell,
        state: CellState,
        monitors: dict[str, Monitor],
        reward: float | torch.Tensor,
    ) -> None:
        """Add the cell's terms of this step, scaled by each sample's reward."""
        spike_post = monitors["spike_post"].peek()
        if spike_post is None:
            return
        scale = reward_per_sample(reward, spike_post.shape[0], cell.connection.weight)
        terms = self.stdp_terms(name, post_scale=scale)
        if terms is None:
            return
        add_signed(
            cell.updater.weight,
            state.lr_post * terms[0] + state.lr_pre * terms[1],
            state.batch_reduction,
        )


class MSTDPET(PairBasedSTDP):
    """Modulated STDP with an eligibility trace (Florian 2007, MSTDPET).

    Called after every ``layer(...)`` step (``learns_windows`` is False: the eligibility and
    the reward are per step).

    Per sample ``b`` the eligibility ``z_b`` (weight shape) follows
    ``z_b <- z_b * exp(-dt / tau_eligibility) + zeta_b(t) / tau_eligibility`` and each step adds
    ``dw = dt * reward_b * z_b``, reduced over the batch (``batch_reduction``); ``zeta`` is as in
    :class:`MSTDP`. The eligibility is auxiliary state of the cell (``state.eligibility``,
    ``(B, *weight.shape)``: memory grows with batch x weight size); :meth:`clear` empties it,
    and it is re-created at the first step of a batch of another size.

    Args:
        tau_eligibility: eligibility trace time constant (ms, > 0).
        others: as for :class:`~celltrain.learn.STDP`.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((1, 2), 500.0)
        >>> layer = Layer({"n": LIF(1)}, {"in": ("input", "n", Linear(2, 1, weight=w))})
        >>> rule = MSTDPET(tau_eligibility=25.0)
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> _ = layer(input=torch.tensor([[True, False]]))
        >>> rule(reward=1.0)
        >>> rule.states["in"].eligibility.shape  # (B, *weight.shape)
        torch.Size([1, 1, 2])
    """

    learns_windows = False
    time_constants = ("tau_pre", "tau_post", "tau_eligibility")

    def __init__(
        self,
        lr_post: float = 1e-2,
        lr_pre: float = -1e-2,
        tau_pre: float = 20.0,
        tau_post: float = 20.0,
        tau_eligibility: float = 25.0,
        trace_mode: str = "cumulative",
        batch_reduction: str = "mean",
    ) -> None:
        super().__init__(
            lr_post=lr_post,
            lr_pre=lr_pre,
            tau_pre=tau_pre,
            tau_post=tau_post,
            tau_eligibility=tau_eligibility,
            trace_mode=trace_mode,
            batch_reduction=batch_reduction,
        )

    def add_monitors(self, name, state) -> None:  # noqa: ANN001
        super().add_monitors(name, state)
        state.register_buffer("eligibility", torch.empty(0), persistent=False)

    def clear(self, **kwargs: Any) -> None:
        """Clear the monitors and every cell's eligibility trace."""
        super().clear(**kwargs)
        for _, state in self.cells:
            state.eligibility = torch.empty(0, device=state.eligibility.device)

    def forward(self, reward: float | torch.Tensor) -> None:
        """Decay every cell's eligibility, add this step's terms to it, and add the rewarded
        change (training mode only).

        Args:
            reward: a scalar or one value per sample ``(B,)`` (dimensionless).
        """
        super().forward(reward)

    def learn_cell(
        self,
        name: str,
        cell: Cell,
        state: CellState,
        monitors: dict[str, Monitor],
        reward: float | torch.Tensor,
    ) -> None:
        """One step of the cell's eligibility and its rewarded weight change."""
        terms = self.stdp_terms(name, reduction="none")
        if terms is None:
            return
        zeta = state.lr_post * terms[0] + state.lr_pre * terms[1]
        batch = zeta.shape[0]
        scale = reward_per_sample(reward, batch, cell.connection.weight)
        dt = cell.layer.dt
        eligibility = state.eligibility
        if eligibility.shape != zeta.shape:
            eligibility = torch.zeros_like(zeta)
        eligibility = decayed(eligibility, decay_fraction(dt, state.tau_eligibility))
        state.eligibility = eligibility + zeta / state.tau_eligibility
        weighted = state.eligibility * scale.view((-1,) + (1,) * (zeta.dim() - 1))
        change = weighted.sum(0)
        if state.batch_reduction == "mean":
            change = change / batch
        add_signed(cell.updater.weight, dt * change, state.batch_reduction)
