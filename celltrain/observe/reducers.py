"""Reducers: fold one observation per time step into state of bounded size.

A reducer is an :class:`~torch.nn.Module` whose ``forward(observation, dt)`` folds the
observation of ONE time step (any shape ``(*S)``, typically ``(B, *shape)``) into its state;
``peek()`` returns the current value (``None`` before the first observation) and ``clear()``
goes back to "no observation". Memory never grows with the number of steps observed.

State conventions shared by every reducer:

- State lives in ordinary (persistent) buffers, so ``.to()``, ``state_dict()`` and checkpoints
  keep it, together with the number of folded steps (stored as the module's extra state). The
  buffers are lazily sized by the first observation; a state dict holding state of any shape
  can be loaded into a reducer whatever it holds (even nothing).
- After the first observation every observation must have the same shape until ``clear()``;
  otherwise ``forward`` raises ``ValueError`` naming the expected and the given shape.
- State is replaced out of place (``self.value = new``), so state created under
  ``torch.inference_mode()`` (Lightning's validation) never needs an in-place update later. The
  ring buffer of :class:`History` is the one in-place writer (O(1) per step); it copies its
  buffer once when it was created under inference mode and is written outside of it.
- Floating point state takes the observation's dtype; non floating point observations (bool
  spikes, integers) give state in ``torch.get_default_dtype()``. :class:`Count` counts in
  ``torch.int64``; :class:`Latest` and :class:`History` keep the observation's dtype. A
  :class:`Trace` or :class:`EMA` that decays by less than
  :data:`~celltrain.utils.filters.SLOW_FRACTION` per step holds float32 (or lower) state in
  float64, where a per-step decay keeps its rate.
- Time is in milliseconds: ``dt`` is the length of the step being folded. Reducers that need it
  (:class:`Trace`, :class:`TimeSince`) raise ``ValueError`` when it is ``None``.
- ``fold_window(observations, dt)`` folds ``T`` consecutive steps ``(T, *S)`` at once, with the
  same result as ``T`` calls of ``forward`` (up to float rounding); :class:`Trace`,
  :class:`Count`, :class:`Sum`, :class:`Latest` and :class:`History` do it without a loop per
  step. This is how monitors record a multi-step :meth:`~celltrain.neural.Layer.run`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from celltrain.utils.checks import finite, positive
from celltrain.utils.filters import (
    decay_fraction,
    decay_powers,
    decayed,
    exponential_filter,
    state_dtype,
)
from celltrain.utils.gradient import gradient_free
from celltrain.utils.spikes import spikes_as

__all__ = [
    "EMA",
    "Count",
    "History",
    "Latest",
    "Mean",
    "Reducer",
    "Sum",
    "TimeSince",
    "Trace",
]


def _float_dtype(observation: Tensor) -> torch.dtype:
    """Dtype of floating point state built from ``observation``."""
    if observation.is_floating_point():
        return observation.dtype
    return torch.get_default_dtype()


class Reducer(nn.Module):
    """Base class: folds one observation per time step into lazily sized, bounded state.

    Subclasses name their state buffers in ``_state`` and implement :meth:`_start` (fold the
    first observation into fresh state), :meth:`_step` (fold a later one), :attr:`shape` and
    :meth:`peek`. Set ``needs_dt = True`` when the fold uses ``dt``.
    """

    _state: tuple[str, ...] = ()
    needs_dt: bool = False

    def __init__(self) -> None:
        super().__init__()
        for name in self._state:
            self.register_buffer(name, torch.empty(0))
        self._steps = 0

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

    @gradient_free
    def forward(self, observation: Tensor, dt: float | None = None) -> None:
        """Fold the observation of one time step.

        Args:
            observation: the observed tensor of this step, shape ``(*S)``; ``S`` must stay the
                same until :meth:`clear`.
            dt: length of this step in ms (finite, > 0); required by reducers with
                ``needs_dt`` (usually passed in by a :class:`Monitor` from the observed
                module's ``dt``).

        Raises:
            TypeError: ``observation`` is not a tensor, or ``dt`` (when needed) not a number.
            ValueError: ``dt`` is needed and missing or not positive, or ``observation`` has
                a different shape than the state folded so far.
        """
        if not isinstance(observation, Tensor):
            raise TypeError(
                f"{type(self).__name__}: observation must be a Tensor, "
                f"got {type(observation).__name__}"
            )
        if self.needs_dt:
            dt = self._check_dt(dt)
        steps = self._steps
        if steps and observation.shape != self.shape:
            raise ValueError(
                f"{type(self).__name__}: observation of shape {tuple(observation.shape)} does "
                f"not match the state folded so far, expected shape {tuple(self.shape)}; "
                "call clear() before observing tensors of another shape"
            )
        self._steps = steps + 1  # the fold sees the count including this step
        try:
            (self._step if steps else self._start)(observation, dt)
        except Exception:
            self._steps = steps
            raise

    @gradient_free
    def fold_window(self, observations: Tensor, dt: float | None = None) -> None:
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
        if not isinstance(observations, Tensor):
            raise TypeError(
                f"{type(self).__name__}: observations must be a Tensor, "
                f"got {type(observations).__name__}"
            )
        if observations.dim() < 1 or observations.shape[0] < 1:
            raise ValueError(
                f"{type(self).__name__}: observations must be (T, *S) with T >= 1 steps, got "
                f"shape {tuple(observations.shape)}"
            )
        if self.needs_dt:
            dt = self._check_dt(dt)
        steps = self._steps
        if steps and observations.shape[1:] != self.shape:
            raise ValueError(
                f"{type(self).__name__}: observations of shape {tuple(observations.shape)} do "
                f"not match the state folded so far, expected shape (T, "
                f"{', '.join(map(str, self.shape))}); call clear() before observing tensors "
                "of another shape"
            )
        self._fold_window(observations, dt)

    def _fold_window(self, observations: Tensor, dt: float | None) -> None:
        """Fold ``(T, *S)`` observations (checked); by default one :meth:`forward` per step."""
        for observation in observations:
            self.forward(observation, dt)

    def _check_dt(self, dt: float | None) -> float:
        if dt is None:
            raise ValueError(
                f"{type(self).__name__} needs the step length dt (ms) but got dt=None "
                "(the observed module has no 'dt' attribute)"
            )
        return positive("dt", dt)

    def _start(self, observation: Tensor, dt: float | None) -> None:
        raise NotImplementedError

    def _step(self, observation: Tensor, dt: float | None) -> None:
        raise NotImplementedError

    def _set(self, name: str, state: Tensor) -> None:
        """Replace state buffer ``name`` (out of place; the fast path of ``self.name = state``)."""
        self._buffers[name] = state

    def clear(self) -> None:
        """Forget every observation; memory goes back to empty placeholders."""
        for name in self._state:
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
        for name in self._state:
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


class _Fold(Reducer):
    """A reducer whose state is one tensor ``value`` of the observation's shape.

    Subclasses give the state before the first observation (:meth:`_initial`, zeros in the
    floating dtype by default) and the fold ``value <- _fold(value, observation, dt)``.
    """

    _state = ("value",)

    @property
    def shape(self) -> torch.Size | None:
        return self.value.shape if self._steps else None

    def peek(self) -> Tensor | None:
        """The current value, shape ``(*S)`` like the observations; ``None`` before any."""
        return self.value if self._steps else None

    def recent(self) -> Tensor | None:
        """The value after each step of the latest fold, oldest first, ``(n, *S)``.

        ``n = 1`` after :meth:`forward` (a view of :meth:`peek`), ``n = T`` after
        :meth:`fold_window` of ``T`` steps (e.g. a trace at every step of a
        :meth:`~celltrain.neural.Layer.run`, which a learning rule pairs with the spikes of
        the same steps). ``None`` before any observation. Memory is bounded by the longest
        window folded, never by the number of steps observed.
        """
        if not self._steps:
            return None
        recent = self.__dict__.get("_recent")
        if recent is None:
            return self.value.unsqueeze(0)
        if callable(recent):  # computed on first use (see Trace)
            recent = recent()
            self.__dict__["_recent"] = recent
        return recent

    def clear(self) -> None:
        super().clear()
        self.__dict__["_recent"] = None
        self.__dict__["_window_start"] = None

    def _initial(self, observation: Tensor) -> Tensor:
        return torch.zeros_like(observation, dtype=_float_dtype(observation))

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        raise NotImplementedError

    def _start(self, observation: Tensor, dt: float | None) -> None:
        self.__dict__["_recent"] = None
        self._set("value", self._fold(self._initial(observation), observation, dt))

    def _step(self, observation: Tensor, dt: float | None) -> None:
        self.__dict__["_recent"] = None
        self._set("value", self._fold(self.value, observation, dt))

    def _check_loaded(self, prefix: str, error_msgs: list[str]) -> None:
        # loaded state has no window of its own
        self.__dict__["_recent"] = None
        self.__dict__["_window_start"] = None
        super()._check_loaded(prefix, error_msgs)

    def _fold_window(self, observations: Tensor, dt: float | None) -> None:
        start = self.value if self._steps else self._initial(observations[0])
        final, recent = self._fold_series(start, observations, dt)
        self._steps += observations.shape[0]
        self._set("value", final)
        self.__dict__["_recent"] = recent
        self.__dict__["_window_start"] = start

    def window_start(self) -> Tensor | None:
        """The value just before the latest :meth:`fold_window` (the state at rest if that
        window was the first fold), ``(*S)``; ``None`` when the latest fold was a single
        :meth:`forward` step or nothing was folded. Rules that pair a window's events in
        closed form use it for what was carried into the window."""
        if not self._steps or self.__dict__.get("_recent") is None:
            return None
        return self.__dict__.get("_window_start")

    def _fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Tensor | Any]:
        """``(final value, values at each step)`` of folding ``observations`` ``(T, *S)`` into
        ``start``; the second may be a callable that computes them on first use. By default
        one :meth:`_fold` per step."""
        values, value = [], start
        for observation in observations:
            self._steps += 1  # folds such as Mean read the step count
            value = self._fold(value, observation, dt)
            values.append(value)
        self._steps -= len(values)
        return value, torch.stack(values)


class _EventFold(_Fold):
    """A fold over events: the elements where ``observation == target``."""

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


class Trace(_EventFold):
    """Exponentially decaying trace of events (spikes), time constant ``tau`` ms.

    With ``event = (observation == target)`` and ``d = exp(-dt / tau)``, each step folds

    - ``mode="cumulative"``: ``x <- d * x + amplitude * event``;
    - ``mode="nearest"``: ``x <- amplitude`` where ``event``, else ``d * x``.

    The trace starts at zero; ``peek()`` has the observation's shape ``(*S)`` in floating point
    (see the module docstring for the dtype).

    Args:
        tau: time constant in ms (finite, > 0).
        amplitude: added (cumulative) or set (nearest) on each event (finite).
        target: observed value that counts as an event (``True`` for bool spikes).
        mode: ``"cumulative"`` or ``"nearest"``.

    Raises:
        ValueError: ``tau`` is not finite and positive, ``amplitude`` not finite, or ``mode``
            unknown.
        TypeError: ``tau`` or ``amplitude`` is not a real number.
    """

    needs_dt = True

    def __init__(
        self,
        tau: float,
        amplitude: float = 1.0,
        target: Any = True,
        mode: Literal["cumulative", "nearest"] = "cumulative",
    ) -> None:
        super().__init__(target)
        self.tau = positive("tau", tau)
        self.amplitude = finite("amplitude", amplitude)
        if mode not in ("cumulative", "nearest"):
            raise ValueError(f"mode must be 'cumulative' or 'nearest', got {mode!r}")
        self.mode = mode

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        event = self.event(observation)
        fraction = decay_fraction(dt, self.tau)
        value = decayed(value.to(state_dtype(value.dtype, fraction)), fraction)
        if self.mode == "nearest":
            return torch.where(event, self.amplitude, value)
        return value.add_(event, alpha=self.amplitude)  # value is a fresh temporary

    def _fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        # closed forms instead of a loop: the final value now, the per-step series on demand
        start = start.to(state_dtype(start.dtype, decay_fraction(dt, self.tau)))
        decay = math.exp(-dt / self.tau)
        events = self.event(observations)
        steps = events.shape[0]
        dtype = start.dtype
        if self.mode == "nearest":
            series = self._nearest_series(start, events, decay)
            return series[-1].clone(), series
        # x[T] = d^T x[0] + amplitude * sum_s d^(T-s) event[s]
        weights = decay_powers(steps, decay, dtype, start.device, first=0).flip(0)
        flat = events.reshape(steps, -1)
        final = torch.zeros(flat.shape[1], dtype=dtype, device=start.device)
        # in chunks of about a million events: converting a large window to floats at once
        # costs more in fresh memory than in arithmetic
        chunk = max(1, (1 << 20) // max(1, flat.shape[1]))
        for first in range(0, steps, chunk):
            part = spikes_as(flat[first : first + chunk], dtype)
            final.addmv_(part.t(), weights[first : first + chunk])
        final = final.view(start.shape).mul_(self.amplitude)
        final.add_(start, alpha=decay**steps)
        amplitude = self.amplitude
        if events is observations:
            events = events.clone()  # the series is formed later: not from edited inputs

        def series() -> Tensor:
            return exponential_filter(events.to(dtype) * amplitude, decay, start)

        return final, series

    def _nearest_series(self, start: Tensor, events: Tensor, decay: float) -> Tensor:
        steps = events.shape[0]
        view = (-1,) + (1,) * (events.dim() - 1)
        index = torch.arange(1, steps + 1, device=events.device).view(view)
        last = torch.where(events, index, 0).cummax(0).values  # step of the latest event, 0: none
        since = (index - last).to(start.dtype)
        base = torch.tensor(decay, dtype=start.dtype, device=start.device)
        from_event = torch.pow(base, since).mul_(self.amplitude)  # 0 ** 0 = 1
        carried = torch.pow(base, index.to(start.dtype)) * start
        return torch.where(last > 0, from_event, carried)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, amplitude={self.amplitude}, {super().extra_repr()}, "
            f"mode={self.mode!r}"
        )


class Count(_EventFold):
    """Number of events (``observation == target``) per element, as a ``torch.int64`` tensor.

    ``peek()`` has the observation's shape ``(*S)``; divide by :attr:`steps` (or by the
    observed time ``steps * dt``) for a rate.

    Args:
        target: observed value that counts as an event (``True`` for bool spikes).
    """

    def _initial(self, observation: Tensor) -> Tensor:
        return torch.zeros(observation.shape, dtype=torch.int64, device=observation.device)

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return value + self.event(observation)

    def _fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        events = self.event(observations)
        if events is observations:
            events = events.clone()  # the series is formed later: not from edited inputs
        return start + events.sum(0), lambda: start + events.cumsum(0)


class TimeSince(_EventFold):
    """Time in ms since the last event (``observation == target``) of each element.

    ``+inf`` until the element's first event, ``0`` at the step of an event, then growing by
    ``dt`` each step. ``peek()`` has the observation's shape ``(*S)`` in floating point.

    Args:
        target: observed value that counts as an event (``True`` for bool spikes).
    """

    needs_dt = True

    def _initial(self, observation: Tensor) -> Tensor:
        return torch.full_like(observation, math.inf, dtype=_float_dtype(observation))

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return torch.where(self.event(observation), 0.0, value + dt)


class Sum(_Fold):
    """Element-wise sum of the observations, shape ``(*S)``, floating point (bool -> 0/1)."""

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return value + observation

    def _fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        values = observations.to(start.dtype)
        if values is observations:
            values = values.clone()  # the series is formed later: not from edited inputs
        return start + values.sum(0), lambda: start + values.cumsum(0)


class _Lerp(_Fold):
    """A fold ``x <- x + w * (observation - x)`` (``torch.lerp``) with a weight per step."""

    def weight(self) -> float:
        """Weight of the current observation (in (0, 1])."""
        raise NotImplementedError

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        # lerp with a small weight is value + w (observation - value): accurate in any dtype
        return torch.lerp(value, observation.to(value.dtype), self.weight())


class Mean(_Lerp):
    """Running element-wise mean of the observations, shape ``(*S)``, floating point.

    For bool spikes this is the fraction of steps with a spike (divide by ``dt`` for a rate
    per ms). Updated incrementally: ``x <- x + (observation - x) / n`` at the ``n``-th step.
    """

    def weight(self) -> float:
        return 1.0 / self._steps


class EMA(_Lerp):
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
    """

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = finite("alpha", alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")

    def weight(self) -> float:
        return self.alpha

    def _initial(self, observation: Tensor) -> Tensor:
        return observation.to(state_dtype(_float_dtype(observation), self.alpha))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Latest(_Fold):
    """The latest observation (a copy, in its own dtype), shape ``(*S)``."""

    def _initial(self, observation: Tensor) -> Tensor:
        return observation

    def _fold(self, value: Tensor, observation: Tensor, dt: float | None) -> Tensor:
        return observation.clone()

    def _fold_series(
        self, start: Tensor, observations: Tensor, dt: float | None
    ) -> tuple[Tensor, Any]:
        window = observations.clone()
        return window[-1].clone(), window  # a view would pin the whole window in checkpoints


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
    """

    _state = ("data",)

    def __init__(self, size: int) -> None:
        super().__init__()
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

    def _start(self, observation: Tensor, dt: float | None) -> None:
        data = observation.new_zeros((self.size, *observation.shape))
        data[0] = observation
        self._set("data", data)

    def _step(self, observation: Tensor, dt: float | None) -> None:
        if self.data.is_inference() and not torch.is_inference_mode_enabled():
            # created under inference mode: one copy makes it writable outside of it
            self._set("data", self.data.clone())
        self.data[(self._steps - 1) % self.size] = observation

    def _fold_window(self, observations: Tensor, dt: float | None) -> None:
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
