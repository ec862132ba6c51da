"""Base class of every component that advances in time steps of ``dt`` milliseconds."""

from __future__ import annotations

import torch

from celltrain.neural.window import HookedModule
from celltrain.utils.checks import positive


class Stepped(HookedModule):
    """A module stepped once per time step of ``dt`` ms, with lazily batch-sized state.

    ``dt`` is owned by the network: a :class:`~celltrain.neural.Layer` sets it on every
    component it holds whenever ``layer.dt`` changes, so no component keeps a stale copy.
    Standalone components start at ``dt = 1.0`` ms.

    State tensors have shape ``(B, *shape)``. They are declared with :meth:`register_state`
    and held as plain attributes, not buffers: they are not learned and must not pin a batch
    size into checkpoints (nor be broadcast between processes), and reading them costs no
    ``nn.Module.__getattr__`` lookup in the step loop. ``.to()``, ``.double()`` and the like
    still convert them (:meth:`_apply`). They start empty, are created at rest on the first
    step after :meth:`reset`, and are always replaced out of place, so a state created under
    ``torch.inference_mode()`` never has to be modified in place later.

    Example::

        >>> class Counter(Stepped):  # state of shape (B,), sized by the first step
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.register_state("count")
        ...     def forward(self, x):
        ...         if self.count.numel() == 0:
        ...             self.count = torch.zeros(x.shape[0])
        ...         self.count = self.count + x
        ...         return self.count
        >>> counter = Counter()
        >>> _ = counter(torch.ones(2)); counter(torch.ones(2))
        tensor([2., 2.])
    """

    def __init__(self) -> None:
        super().__init__()
        self._dt = 1.0
        self._state_names: list[str] = []

    def __setattr__(self, name: str, value: object) -> None:
        if name in self.__dict__.get("_state_names", ()):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"state {name!r} must be a tensor, got {type(value).__name__}")
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 (nn.Module's signature)
        super()._apply(fn, recurse)
        for name in self._state_names:
            self.__dict__[name] = fn(self.__dict__[name])
        return self

    @property
    def dt(self) -> float:
        """Length of one time step in ms."""
        return self._dt

    @dt.setter
    def dt(self, value: float) -> None:
        self._dt = positive("dt", value)

    def set_state(self, **state: torch.Tensor) -> None:
        """Replace state tensors in one call (what a step writes; no checks: the step's own
        tensors). The same as ``self.<name> = value`` for each, at a fraction of the cost."""
        self.__dict__.update(state)

    def register_state(self, name: str, dtype: torch.dtype | None = None) -> None:
        """Declare the state tensor ``name``, empty until the first step (filled lazily).

        Raises:
            KeyError: ``name`` is already an attribute.
        """
        if hasattr(self, name):
            raise KeyError(f"{type(self).__name__} already has an attribute {name!r}")
        self.__dict__[name] = torch.empty(0, dtype=dtype)
        self._state_names.append(name)

    def needs_state(self, batch: int) -> bool:
        """Whether the state must be created at rest for a batch of ``batch`` samples.

        Raises:
            ValueError: the state holds a different batch size (call :meth:`reset` first).
        """
        first = getattr(self, self._state_names[0])
        if first.numel() == 0:
            return True
        if first.shape[0] != batch:
            raise ValueError(
                f"{type(self).__name__} holds state for a batch of {first.shape[0]} samples but "
                f"got a batch of {batch}; call reset() before presenting a new batch"
            )
        return False

    def reset(self) -> None:
        """Forget the batch state; the next step starts every sample at rest."""
        for name in self._state_names:
            old = getattr(self, name)
            setattr(self, name, torch.empty(0, dtype=old.dtype, device=old.device))
