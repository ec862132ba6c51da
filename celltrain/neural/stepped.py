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

    State tensors have shape ``(B, *shape)``. They are non-persistent buffers (they are not
    learned and must not pin a batch size into checkpoints), start empty, are created at rest
    on the first step after :meth:`reset`, and are always replaced out of place, so a state
    created under ``torch.inference_mode()`` never has to be modified in place later.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dt = 1.0
        self._state_names: list[str] = []
        self._state_fast: set[str] = set()

    def __setattr__(self, name: str, value: object) -> None:
        # State is replaced every step; writing the buffer slot directly skips
        # nn.Module.__setattr__'s registration path, which dominates a step's Python cost.
        if name in self.__dict__.get("_state_fast", ()):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"state {name!r} must be a tensor, got {type(value).__name__}")
            self._buffers[name] = value
        else:
            super().__setattr__(name, value)
            # cached step constants (e.g. LIF.constants) follow any parameter or dt change
            self.__dict__.pop("_constants", None)

    @property
    def dt(self) -> float:
        """Length of one time step in ms."""
        return self._dt

    @dt.setter
    def dt(self, value: float) -> None:
        self._dt = positive("dt", value)

    def register_state(self, name: str, dtype: torch.dtype | None = None) -> None:
        """Declare an empty, non-persistent state buffer ``name`` (filled lazily)."""
        self.register_buffer(name, torch.empty(0, dtype=dtype), persistent=False)
        self._state_names.append(name)
        self._state_fast.add(name)

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
