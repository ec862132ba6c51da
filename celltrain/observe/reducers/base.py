"""The reducer bases: :class:`Reducer` (declared, lazily sized state; one step or a window of
steps), :class:`FoldReducer` (state ``value`` of the observation's shape, one ``fold`` method)
and :class:`EventFold`, and the :class:`Window` a fold over several steps leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from celltrain.utils.checks import positive
from celltrain.utils.gradient import gradient_free


def float_dtype(observation: Tensor) -> torch.dtype:
    """Dtype of floating point state built from ``observation``: its own if floating point,
    else ``torch.get_default_dtype()`` (bool spikes, integers)."""
    if observation.is_floating_point():
        return observation.dtype
    return torch.get_default_dtype()


class Window:
    """What a reducer folded over its latest window of ``steps`` steps.

    Attributes:
        start: the value just before the window, ``(*S)`` (the state at rest when the window
            was the first fold).
        steps: the number of steps ``T`` of the window.

    :attr:`values`, the value after each step ``(T, *S)``, is computed on first use (a rule
    that learns from the window in closed form may never need it) and then kept.

    Example::

        >>> window = Window(torch.zeros(2), 3, values=torch.ones(3, 2))
        >>> window.steps, tuple(window.values.shape)
        (3, (3, 2))
    """

    __slots__ = ("_compute", "_values", "start", "steps")

    def __init__(
        self,
        start: Tensor,
        steps: int,
        values: Tensor | None = None,
        compute: Callable[[], Tensor] | None = None,
    ) -> None:
        if (values is None) == (compute is None):
            raise ValueError("a Window needs exactly one of values and compute")
        self.start, self.steps = start, steps
        self._values, self._compute = values, compute

    @property
    def values(self) -> Tensor:
        """The value after each step of the window, oldest first, ``(T, *S)``."""
        if self._values is None:
            self._values, self._compute = self._compute(), None
        return self._values


class Reducer(nn.Module):
    """Base class: folds one observation per time step into lazily sized, bounded state.

    A subclass declares each state tensor with :meth:`add_state` in its ``__init__`` (a
    persistent buffer, empty until the first observation, so ``.to()`` and ``state_dict()``
    keep it) and implements :meth:`fold_first` (fold the first observation into fresh state),
    :meth:`fold_next` (fold a later one), :attr:`shape` and :meth:`peek`; :meth:`fold_run`
    folds a checked window (one :meth:`forward` per step by default). Set ``needs_dt = True``
    when the fold uses ``dt``. :meth:`forward` (one step) and :meth:`run` (``T`` steps) check
    their arguments and keep the step count; they are not overridden.

    Example::

        >>> reducer = Count()  # a Reducer: one step with forward, T steps with run
        >>> reducer(torch.tensor([True, False])); reducer.run(torch.ones(3, 2, dtype=torch.bool))
        >>> reducer.peek(), reducer.steps
        (tensor([4, 3]), 4)
    """

    needs_dt: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._state_names: list[str] = []
        self._steps = 0

    def add_state(self, name: str) -> None:
        """Declare the state tensor ``name``: a persistent buffer, empty until the first
        observation and after :meth:`clear`, loaded whatever its saved shape."""
        self.register_buffer(name, torch.empty(0))
        self._state_names.append(name)

    @property
    def steps(self) -> int:
        """Number of observations folded since construction or the last :meth:`clear`."""
        return self._steps

    @property
    def shape(self) -> torch.Size | None:
        """Shape of the observations being folded, ``None`` before the first one."""
        raise NotImplementedError

    def peek(self) -> Tensor | None:
        """The current value, ``None`` before any observation."""
        raise NotImplementedError

    def _check(self, observations: Tensor, dt: float | None, window: bool) -> float | None:
        """Check one step ``(*S)`` or a window ``(T, *S)`` of observations and ``dt``."""
        what = "observations" if window else "observation"
        if not isinstance(observations, Tensor):
            raise TypeError(
                f"{type(self).__name__}: {what} must be a Tensor, got {type(observations).__name__}"
            )
        if window and (observations.dim() < 1 or observations.shape[0] < 1):
            raise ValueError(
                f"{type(self).__name__}: observations must be (T, *S) with T >= 1 steps, got "
                f"shape {tuple(observations.shape)}"
            )
        if self.needs_dt:
            if dt is None:
                raise ValueError(
                    f"{type(self).__name__} needs the step length dt (ms) but got dt=None "
                    "(the observed module has no 'dt' attribute)"
                )
            dt = positive("dt", dt)
        shape = observations.shape[1:] if window else observations.shape
        if self._steps and shape != self.shape:
            expected = (
                f"(T, {', '.join(map(str, self.shape))})" if window else f"{tuple(self.shape)}"
            )
            raise ValueError(
                f"{type(self).__name__}: {what} of shape {tuple(observations.shape)} "
                f"{'do' if window else 'does'} not match the state folded so far, expected "
                f"shape {expected}; call clear() before observing tensors of another shape"
            )
        return dt

    @gradient_free
    def forward(self, observation: Tensor, dt: float | None = None) -> None:
        """Fold the observation of one time step.

        Args:
            observation: the observed tensor of this step, shape ``(*S)``; ``S`` must stay the
                same until :meth:`clear`.
            dt: length of this step in ms (finite, > 0); required by reducers with
                ``needs_dt`` (usually passed in by a :class:`~celltrain.observe.Monitor` from
                the observed module's ``dt``).

        Raises:
            TypeError: ``observation`` is not a tensor, or ``dt`` (when needed) not a number.
            ValueError: ``dt`` is needed and missing or not positive, or ``observation`` has
                a different shape than the state folded so far.
        """
        dt = self._check(observation, dt, window=False)
        steps = self._steps
        self._steps = steps + 1  # the fold sees the count including this step
        try:
            (self.fold_next if steps else self.fold_first)(observation, dt)
        except Exception:
            self._steps = steps
            raise

    @gradient_free
    def run(self, observations: Tensor, dt: float | None = None) -> None:
        """Fold the observations of ``T`` consecutive steps at once.

        The result is that of ``T`` calls ``forward(observations[t], dt)`` (up to float
        rounding); reducers with a closed form do it without a Python loop per step.

        Args:
            observations: ``(T, *S)``, time first, ``T >= 1``; ``S`` as for :meth:`forward`.
            dt: length of each step in ms (as for :meth:`forward`).

        Raises:
            TypeError, ValueError: as for :meth:`forward`; also ``ValueError`` when
                ``observations`` has no time dimension or no step.
        """
        dt = self._check(observations, dt, window=True)
        self.fold_run(observations, dt)

    def fold_run(self, observations: Tensor, dt: float | None) -> None:
        """Fold checked observations ``(T, *S)``; by default one :meth:`forward` per step."""
        for observation in observations:
            self.forward(observation, dt)

    def fold_first(self, observation: Tensor, dt: float | None) -> None:
        """Fold the first observation (after construction or :meth:`clear`) into fresh state."""
        raise NotImplementedError

    def fold_next(self, observation: Tensor, dt: float | None) -> None:
        """Fold a later observation into the state."""
        raise NotImplementedError

    def _set(self, name: str, state: Tensor) -> None:
        """Replace state ``name`` out of place (the buffer slot directly: ``self.name = state``
        would take ``nn.Module.__setattr__``'s slower registration path)."""
        self._buffers[name] = state

    def clear(self) -> None:
        """Forget every observation; memory goes back to empty placeholders."""
        for name in self._state_names:
            self._set(name, self._buffers[name].new_empty(0))
        self._steps = 0

    def get_extra_state(self) -> dict[str, int]:
        """The number of folded steps, saved in ``state_dict()`` beside the buffers."""
        return {"steps": self._steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        """Restore the number of folded steps from ``state_dict()``."""
        self._steps = int(state["steps"])

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # The state is lazily sized: take the shape and dtype of the saved state (on the
        # current device) so that the default loader can copy it in.
        for name in self._state_names:
            saved = state_dict.get(prefix + name)
            current = self._buffers[name]
            if isinstance(saved, Tensor) and (
                saved.shape != current.shape or saved.dtype != current.dtype
            ):
                self._buffers[name] = torch.empty(
                    saved.shape, dtype=saved.dtype, device=current.device
                )
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )
        self._check_loaded(prefix, error_msgs)

    def _check_loaded(self, prefix: str, error_msgs: list[str]) -> None:
        """Append to ``error_msgs`` what makes freshly loaded state unusable (nothing here)."""


class FoldReducer(Reducer):
    """A reducer whose state is one tensor ``value`` of the observation's shape.

    A subclass writes :meth:`fold` (``value <- fold(value, observation, dt)``) and, where the
    default does not fit, :meth:`initial` (the state before the first observation: zeros in the
    floating dtype) and :meth:`fold_series` (a closed form over a window). After a window the
    reducer keeps a :class:`Window` of it (:meth:`window`): a plain attribute, not saved in
    ``state_dict()``, reset by any later step, :meth:`clear` or load.

    Example::

        >>> class Peak(FoldReducer):  # the largest observation so far
        ...     def initial(self, observation):
        ...         return torch.full_like(observation, -torch.inf, dtype=torch.float32)
        ...     def fold(self, value, observation, dt):
        ...         return torch.maximum(value, observation)
        >>> peak = Peak()
        >>> peak.run(torch.tensor([[1.0], [3.0], [2.0]]))
        >>> peak.peek(), peak.window().values[:, 0]
        (tensor([3.]), tensor([1., 3., 3.]))
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_state("value")
        #: the latest fold over a window of steps, None after a single step (not persistent)
        self._window: Window | None = None

    @property
    def shape(self) -> torch.Size | None:
        return self.value.shape if self._steps else None

    def peek(self) -> Tensor | None:
        """The current value, shape ``(*S)`` like the observations; ``None`` before any."""
        return self.value if self._steps else None

    def window(self) -> Window | None:
        """The latest fold over a window (:meth:`run`) as a :class:`Window` (start, steps, and
        the value after each step); ``None`` when the latest fold was one :meth:`forward` step
        or nothing was folded. Rules that pair a window's events in closed form use its
        ``start`` for what was carried into the window."""
        return self._window if self._steps else None

    def recent(self) -> Tensor | None:
        """The value after each step of the latest fold, oldest first, ``(n, *S)``.

        ``n = 1`` after :meth:`forward` (a view of :meth:`peek`), ``n = T`` after :meth:`run`
        of ``T`` steps (e.g. a trace at every step of a :meth:`~celltrain.neural.Layer.run`,
        which a learning rule pairs with the spikes of the same steps). ``None`` before any
        observation. Memory is bounded by the longest window folded, never by the number of
        steps observed.
        """
        if not self._steps:
            return None
        return self.value.unsqueeze(0) if self._window is None else self._window.values

    def clear(self) -> None:
        super().clear()
        self._window = None

    def initial(self, observation: Tensor) -> Tensor:
        """The state before the first observation: zeros of its shape, floating point."""
        return torch.zeros_like(observation, dtype=float_dtype(observation))

    def fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        """The new value after one step of ``observation`` (a new tensor)."""
        raise NotImplementedError

    def fold_first(self, observation: Tensor, dt: float | None) -> None:
        self._window = None
        self._set("value", self.fold(self.initial(observation), observation, dt))

    def fold_next(self, observation: Tensor, dt: float | None) -> None:
        self._window = None
        self._set("value", self.fold(self.value, observation, dt))

    def _check_loaded(self, prefix: str, error_msgs: list[str]) -> None:
        self._window = None  # loaded state has no window of its own
        super()._check_loaded(prefix, error_msgs)

    def fold_run(self, observations: Tensor, dt: float | None) -> None:
        start = self.value if self._steps else self.initial(observations[0])
        final, series = self.fold_series(start, observations, dt)
        self._steps += observations.shape[0]
        self._set("value", final)
        if callable(series):
            self._window = Window(start, observations.shape[0], compute=series)
        else:
            self._window = Window(start, observations.shape[0], values=series)

    def fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Tensor | Callable[[], Tensor]]:
        """``(final value, values at each step (T, *S))`` of folding ``observations``
        ``(T, *S)`` into ``start``; the second may be a function that computes them on first
        use. By default one :meth:`fold` per step."""
        values, value = [], start
        for observation in observations:
            self._steps += 1  # folds such as Mean read the step count
            value = self.fold(value, observation, dt)
            values.append(value)
        self._steps -= len(values)
        return value, torch.stack(values)


class EventFold(FoldReducer):
    """A fold over events: the elements where ``observation == target``.

    Args:
        target: observed value that counts as an event (``True`` for bool spikes).

    Example::

        >>> class Events(EventFold):  # counts the steps where the observation equals target
        ...     def fold(self, value, observation, dt):
        ...         return value + self.event(observation)
        >>> events = Events(target=2)
        >>> events.run(torch.tensor([[2, 1], [2, 2]]))
        >>> events.peek()
        tensor([2., 1.])
    """

    def __init__(self, target: Any = True) -> None:
        super().__init__()
        self.target = target

    def event(self, observation: Tensor) -> Tensor:
        """Bool tensor of the observation's shape, true where ``observation == target``."""
        if observation.dtype == torch.bool and self.target is True:
            return observation
        return observation == self.target

    def extra_repr(self) -> str:
        return f"target={self.target!r}"
