"""Monitor: records one dotted attribute of a module after each of its forward calls."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from celltrain.neural import Layer, WindowObserver
from celltrain.observe.reducers import Reducer, Window

__all__ = ["Monitor", "MonitorConstructor", "check_path", "same_config"]


def check_path(module: nn.Module, attr: str) -> tuple[str, ...]:
    """Check that the dotted path ``attr`` names an attribute reachable from ``module``.

    Every segment but the last must lead to an :class:`~torch.nn.Module`; the last may hold
    anything (e.g. a state buffer that is still empty or ``None`` before the first step).

    Args:
        module: the module the path starts from.
        attr: dotted attribute path, e.g. ``"neurons.exc.spike"``.

    Returns:
        The path's segments.

    Raises:
        AttributeError: a segment is empty or missing, or the path goes through an attribute
            that is not a module; the message names the path.
    """
    if not isinstance(attr, str):
        raise TypeError(f"attr must be a dotted attribute path (str), got {attr!r}")
    parts = tuple(attr.split("."))
    obj: Any = module
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or type(module).__name__
        if i and not isinstance(obj, nn.Module):
            raise AttributeError(
                f"attribute path {attr!r} goes through {where!r}, a "
                f"{type(obj).__name__} that is not a module"
            )
        if not part or not hasattr(obj, part):
            raise AttributeError(
                f"attribute path {attr!r} of {type(module).__name__}: {where!r} has no "
                f"attribute {part!r}"
            )
        obj = getattr(obj, part)
    return parts


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and a.device == b.device
            and torch.equal(a, b)
        )
    try:
        return bool(a == b)
    except Exception:  # e.g. containers of tensors: not comparable, so not the same
        return False


def same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two keyword configurations (reducer arguments, tags) are equal.

    Values compare with ``==``; tensors are equal when shape, dtype, device and values agree;
    values whose comparison fails (e.g. lists of tensors) are equal only if identical.
    """
    return a.keys() == b.keys() and all(_same_value(a[key], b[key]) for key in a)


class _RecordHook:
    """Forward hook that records into a monitor of a module that is not a layer, holding the
    monitor only weakly.

    It records only when called for the monitor's own module, so a copy of the module (whose
    hooks dict holds this same hook) never writes into the original's monitor. Copies and
    pickles of the hook are inert; a copied monitor registers a hook of its own.
    """

    __slots__ = ("monitor",)

    def __init__(self, monitor: Monitor | None = None) -> None:
        self.monitor = None if monitor is None else weakref.ref(monitor)

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        monitor = None if self.monitor is None else self.monitor()
        if monitor is not None and monitor.module is module:
            monitor.record()

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return _RecordHook, ()


class Monitor(nn.Module, WindowObserver):
    """Records the dotted attribute ``attr`` of ``module`` after each forward call of
    ``module`` into ``reducer``.

    The monitor owns the reducer (a submodule, so its state follows ``.to()`` and
    ``state_dict()``) but not the observed module: that is held by a plain reference and is not
    a submodule. A monitor of a :class:`~celltrain.neural.Layer` is a
    :class:`~celltrain.neural.WindowObserver` registered with ``layer.add_observer``: it
    records every ``layer(...)`` step, and a whole ``layer.run(...)`` window at once
    (:meth:`record_window`, folded by ``reducer.run``). A monitor of any other module records
    through ``module.register_forward_hook``. Either way the module holds the monitor only
    weakly: a monitor that is garbage collected stops recording. On each record the monitor
    passes ``getattr(module, "dt", None)`` (ms) to the reducer, so a change of ``module.dt``
    takes effect from the next step on.

    A new monitor starts registered (recording).

    Args:
        reducer: the reducer that folds each observation.
        module: the observed module (e.g. a :class:`~celltrain.neural.Layer`).
        attr: dotted attribute path relative to ``module``, e.g. ``"neurons.exc.spike"``.

    Raises:
        AttributeError: ``attr`` does not exist or goes through a non-module attribute.
        TypeError: ``reducer`` is not a :class:`Reducer` or ``module`` not a module.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> w = torch.full((2, 1), 500.0)
        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(1, 2, weight=w))})
        >>> monitor = Monitor(Count(), layer, "neurons.n.spike")
        >>> _ = layer.run(input=torch.ones(4, 1, 1, dtype=torch.bool))
        >>> monitor.peek(), monitor.window().steps
        (tensor([[4, 4]]), 4)
    """

    def __init__(self, reducer: Reducer, module: nn.Module, attr: str) -> None:
        super().__init__()
        if not isinstance(reducer, Reducer):
            raise TypeError(f"reducer must be a Reducer, got {type(reducer).__name__}")
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
        self._parts = check_path(module, attr)
        self.reducer = reducer
        object.__setattr__(self, "_observed", module)  # a plain reference, not a submodule
        self._attr = attr
        self._finalizer: weakref.finalize | None = None
        self._observing = False  # registered with a layer as its observer
        self.register()

    @classmethod
    def partial(
        cls, reducer_factory: Callable[..., Reducer], /, **reducer_kwargs: Any
    ) -> MonitorConstructor:
        """A :class:`MonitorConstructor` building ``cls(reducer_factory(**reducer_kwargs),
        module, attr)`` with a fresh reducer on each call, e.g.
        ``Monitor.partial(Trace, tau=20.0)``.

        Raises:
            The reducer's own errors for bad arguments (one reducer is built to check them).
        """
        reducer_factory(**reducer_kwargs)
        return MonitorConstructor(cls, reducer_factory, reducer_kwargs)

    @property
    def module(self) -> nn.Module:
        """The observed module."""
        return self._observed

    @property
    def attr(self) -> str:
        """The recorded dotted attribute path, relative to :attr:`module`."""
        return self._attr

    @property
    def path(self) -> str:
        """The observed attribute path (:class:`~celltrain.neural.WindowObserver`), ``attr``."""
        return self._attr

    @property
    def takes_windows(self) -> bool:
        """Whether a window may be recorded at once: not for a subclass that overrides
        :meth:`record` alone (it may read more than the attribute at each step)."""
        cls = type(self)
        return cls.record is Monitor.record or cls.record_window is not Monitor.record_window

    @property
    def registered(self) -> bool:
        """Whether the monitor records (registered with its layer, or its hook attached)."""
        if self._observing:
            return self._observed.has_observer(self)
        return self._finalizer is not None

    def register(self) -> Monitor:
        """Start recording (no-op if registered). Returns ``self``."""
        if self.registered:
            return self
        if isinstance(self._observed, Layer):
            self._observed.add_observer(self)
            self._observing = True
        else:
            handle = self._observed.register_forward_hook(_RecordHook(self))
            self._finalizer = weakref.finalize(self, handle.remove)
        return self

    def deregister(self) -> Monitor:
        """Stop recording (no-op if not registered); the content is kept. Returns ``self``."""
        if self._observing:
            self._observed.remove_observer(self)
            self._observing = False
        if self._finalizer is not None:
            self._finalizer()  # removes the hook
            self._finalizer = None
        return self

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles drop the registration and register anew in __setstate__
        state = dict(self.__dict__)
        state["_finalizer"] = None
        state["_observing"] = False
        state["_copy_registered"] = self.registered
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        registered = state.pop("_copy_registered", False)
        super().__setstate__(state)
        if registered:
            self.register()

    def record(self, value: Tensor | None = None) -> None:
        """Fold the attribute's value after one step into the reducer.

        Args:
            value: the value, as the layer hands it over; ``None`` reads the attribute (a
                forward hook calls it so).

        Raises:
            TypeError: the attribute does not hold a tensor.
        """
        if value is None:
            value = functools.reduce(getattr, self._parts, self._observed)
        if not isinstance(value, Tensor):
            raise TypeError(
                f"monitored attribute {self._attr!r} of {type(self._observed).__name__} "
                f"holds a {type(value).__name__}, expected a Tensor"
            )
        self.reducer(value, getattr(self._observed, "dt", None))

    def record_window(self, values: Tensor) -> None:
        """Fold the values ``(T, *S)`` the attribute held after each of ``T`` consecutive steps
        (a multi-step :meth:`~celltrain.neural.Layer.run` calls this once instead of
        :meth:`record` after every step).

        Raises:
            TypeError: ``values`` is not a tensor.
        """
        if not isinstance(values, Tensor):
            raise TypeError(
                f"values of {self._attr!r} must be a Tensor (T, *S), got {type(values).__name__}"
            )
        self.reducer.run(values, getattr(self._observed, "dt", None))

    def window(self) -> Window | None:
        """What the monitor recorded over the latest window (a :class:`~celltrain.observe.
        Window`: ``start``, ``steps`` and the per-step ``values``), ``None`` when the latest
        record was a single step.

        Raises:
            TypeError: the reducer keeps no window (e.g. :class:`History`).
        """
        window = getattr(self.reducer, "window", None)
        if window is None:
            raise TypeError(f"{type(self.reducer).__name__} has no window()")
        return window()

    def recent(self) -> Tensor | None:
        """The reducer's value after each step of its latest fold, ``(n, *S)`` (see
        :meth:`~celltrain.observe.FoldReducer.recent`): ``n = 1`` after a per-step
        record, ``n = T`` after a window of ``T`` steps.

        Raises:
            TypeError: the reducer keeps no per-step value (e.g. :class:`History`).
        """
        recent = getattr(self.reducer, "recent", None)
        if recent is None:
            raise TypeError(f"{type(self.reducer).__name__} has no recent()")
        return recent()

    def peek(self) -> Tensor | None:
        """The reducer's current value (see :meth:`Reducer.peek`), ``None`` before any step."""
        return self.reducer.peek()

    def view(self) -> Tensor | None:
        """The stored time steps, oldest first, ``(n, *S)``, for reducers with a ``view()``
        such as :class:`~celltrain.observe.History`.

        Raises:
            TypeError: the reducer keeps no time steps.
        """
        view = getattr(self.reducer, "view", None)
        if view is None:
            raise TypeError(
                f"{type(self.reducer).__name__} has no view(); use a History reducer to keep "
                "time steps"
            )
        return view()

    def clear(self, **kwargs: Any) -> None:
        """Empty the reducer (keyword arguments go to its ``clear()``)."""
        self.reducer.clear(**kwargs)

    def extra_repr(self) -> str:
        return (
            f"module={type(self._observed).__name__}, attr={self._attr!r}, "
            f"registered={self.registered}"
        )


class MonitorConstructor:
    """Builds a :class:`Monitor` with a fresh reducer on each call: ``(attr, module) ->
    Monitor``.

    Made by :meth:`Monitor.partial`. Two constructors are equal (and hash equal) when they
    have the same monitor class, reducer factory and reducer keyword arguments; a pool
    shares monitors only between equal constructors. Any other callable ``(attr, module) ->
    Monitor`` can stand in for a constructor; it is then equal only to itself.

    Args:
        monitor_cls: the :class:`Monitor` class (or subclass) to build.
        reducer_factory: callable returning a :class:`Reducer` (usually the class).
        reducer_kwargs: keyword arguments of ``reducer_factory``.

    Example::

        >>> from celltrain.neural import LIF
        >>> make = Monitor.partial(Trace, tau=20.0)  # a MonitorConstructor
        >>> make == Monitor.partial(Trace, tau=20.0), make(attr="spike", module=LIF(2)).reducer
        (True, Trace(tau=20.0, amplitude=1.0, target=True, mode='cumulative'))
    """

    __slots__ = ("monitor_cls", "reducer_factory", "reducer_kwargs")

    def __init__(
        self,
        monitor_cls: type[Monitor],
        reducer_factory: Callable[..., Reducer],
        reducer_kwargs: Mapping[str, Any],
    ) -> None:
        self.monitor_cls = monitor_cls
        self.reducer_factory = reducer_factory
        self.reducer_kwargs = MappingProxyType(dict(reducer_kwargs))

    def __call__(self, attr: str, module: nn.Module) -> Monitor:
        """A new monitor of ``module``'s attribute ``attr`` with a fresh reducer."""
        return self.monitor_cls(self.reducer_factory(**self.reducer_kwargs), module, attr)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return MonitorConstructor, (
            self.monitor_cls,
            self.reducer_factory,
            dict(self.reducer_kwargs),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MonitorConstructor):
            return NotImplemented
        return (
            self.monitor_cls is other.monitor_cls
            and self.reducer_factory == other.reducer_factory
            and same_config(self.reducer_kwargs, other.reducer_kwargs)
        )

    def __hash__(self) -> int:
        # argument names only: values may be unhashable, equal constructors still hash equal
        return hash((self.monitor_cls, self.reducer_factory, frozenset(self.reducer_kwargs)))

    def __repr__(self) -> str:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.reducer_kwargs.items())
        factory = getattr(self.reducer_factory, "__name__", repr(self.reducer_factory))
        return f"{self.monitor_cls.__name__}.partial({factory}{', ' if kwargs else ''}{kwargs})"
