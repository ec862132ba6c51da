"""Running statistics of observations: :class:`Sum`, :class:`Mean`, :class:`EMA`,
:class:`Latest`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from celltrain.observe.reducers.base import FoldReducer, float_dtype
from celltrain.utils.checks import finite
from celltrain.utils.filters import state_dtype


class Sum(FoldReducer):
    """Element-wise sum of the observations, shape ``(*S)``, floating point (bool -> 0/1).

    Example::

        >>> total = Sum()
        >>> total.run(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> total.peek()
        tensor([4., 6.])
    """

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return value + observation

    def fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        values = observations.to(start.dtype)
        if values is observations:
            values = values.clone()  # the series is formed later: not from edited inputs
        return start + values.sum(0), lambda: start + values.cumsum(0)


class LerpFold(FoldReducer):
    """A fold ``x <- x + w * (observation - x)`` (``torch.lerp``) with a weight per step."""

    def weight(self) -> float:
        """Weight of the current observation (in (0, 1])."""
        raise NotImplementedError

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        # lerp with a small weight is value + w (observation - value): accurate in any dtype
        return torch.lerp(value, observation.to(value.dtype), self.weight())


class Mean(LerpFold):
    """Running element-wise mean of the observations, shape ``(*S)``, floating point.

    For bool spikes this is the fraction of steps with a spike (divide by ``dt`` for a rate
    per ms). Updated incrementally: ``x <- x + (observation - x) / n`` at the ``n``-th step.

    Example::

        >>> mean = Mean()
        >>> mean.run(torch.tensor([[True], [False], [True], [True]]))
        >>> mean.peek()
        tensor([0.7500])
    """

    def weight(self) -> float:
        return 1.0 / self._steps


class EMA(LerpFold):
    """Exponential moving average ``x <- (1 - alpha) * x + alpha * observation``.

    The first observation initialises ``x``. ``peek()`` has shape ``(*S)``, floating point
    (float64 for float32 observations when ``alpha`` is below
    :data:`~celltrain.utils.filters.SLOW_FRACTION`: a float32 average would then be rounded by
    a large part of each step's change).

    Args:
        alpha: weight of the newest observation, in ``(0, 1]`` (1 keeps only the latest).

    Raises:
        ValueError: ``alpha`` outside ``(0, 1]``.
        TypeError: ``alpha`` is not a real number.

    Example::

        >>> ema = EMA(alpha=0.5)
        >>> ema.run(torch.tensor([[0.0], [1.0], [1.0]]))
        >>> ema.peek()
        tensor([0.7500])
    """

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = finite("alpha", alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")

    def weight(self) -> float:
        return self.alpha

    def initial(self, observation: Tensor) -> Tensor:
        return observation.to(state_dtype(float_dtype(observation), self.alpha))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Latest(FoldReducer):
    """The latest observation (a copy, in its own dtype), shape ``(*S)``.

    Example::

        >>> latest = Latest()
        >>> latest.run(torch.tensor([[1, 2], [3, 4]]))
        >>> latest.peek()
        tensor([3, 4])
    """

    def initial(self, observation: Tensor) -> Tensor:
        return observation

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return observation.clone()

    def fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        window = observations.clone()
        return window[-1].clone(), window  # a view would pin the whole window in checkpoints
