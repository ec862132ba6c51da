"""The ring buffer of the latest steps: :class:`History`."""

from __future__ import annotations

import torch
from torch import Tensor

from celltrain.observe.reducers.base import Reducer


class History(Reducer):
    """Ring buffer of the observations of the last ``size`` steps, in their own dtype.

    Each step writes one slot of a preallocated ``(size, *S)`` buffer in place (O(1) per step,
    nothing is rebuilt). :meth:`view` (and :meth:`peek`) return the stored steps oldest first
    with time as the leading dimension: shape ``(n, *S)`` with ``n = min(size, steps)``.

    Args:
        size: number of steps kept (>= 1).

    Raises:
        ValueError: ``size`` < 1.
        TypeError: ``size`` is not an int.

    Example::

        >>> history = History(size=2)
        >>> history.run(torch.tensor([[1], [2], [3]]))
        >>> history.view()  # the last two steps, oldest first
        tensor([[2],
                [3]])
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.add_state("data")
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, got {size!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = size

    @property
    def shape(self) -> torch.Size | None:
        return self.data.shape[1:] if self._steps else None

    @property
    def available(self) -> int:
        """Number of stored steps, ``min(size, steps)``."""
        return min(self.size, self._steps)

    def fold_first(self, observation: Tensor, dt: float | None) -> None:
        data = observation.new_zeros((self.size, *observation.shape))
        data[0] = observation
        self._set("data", data)

    def fold_next(self, observation: Tensor, dt: float | None) -> None:
        if self.data.is_inference() and not torch.is_inference_mode_enabled():
            # created under inference mode: one copy makes it writable outside of it
            self._set("data", self.data.clone())
        self.data[(self._steps - 1) % self.size] = observation

    def fold_run(self, observations: Tensor, dt: float | None) -> None:
        if not self._steps:
            self._set("data", observations.new_zeros((self.size, *observations.shape[1:])))
        elif self.data.is_inference() and not torch.is_inference_mode_enabled():
            self._set("data", self.data.clone())
        steps = observations.shape[0]
        kept = min(steps, self.size)  # only the last `size` steps survive
        slots = torch.arange(self._steps + steps - kept, self._steps + steps) % self.size
        self.data[slots.to(self.data.device)] = observations[steps - kept :]
        self._steps += steps

    def latest(self, k: int) -> Tensor:
        """The last ``k`` observations, oldest first, shape ``(k, *S)`` (a new tensor).

        Raises:
            ValueError: ``k`` is not in ``[1, available]``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.available:
            raise ValueError(f"k must be an int in [1, {self.available}] (steps stored), got {k!r}")
        end = self._steps % self.size  # slot of the next write
        if end >= k:
            return self.data[end - k : end].clone()
        return torch.cat((self.data[end - k :], self.data[:end]))

    def view(self) -> Tensor | None:
        """Every stored observation, oldest first, shape ``(n, *S)``; ``None`` before any."""
        return self.latest(self.available) if self._steps else None

    def peek(self) -> Tensor | None:
        """Same as :meth:`view`."""
        return self.view()

    def _check_loaded(self, prefix: str, error_msgs: list[str]) -> None:
        if self._steps and self.data.shape[:1] != (self.size,):
            error_msgs.append(
                f"{prefix}data: History of size {self.size} cannot load a ring buffer of "
                f"shape {tuple(self.data.shape)}"
            )

    def extra_repr(self) -> str:
        return f"size={self.size}"
