"""MonitorPool: the monitors of named observed objects (cells), shared where requests agree."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from celltrain.observe.monitor import Monitor, MonitorConstructor, same_config
from celltrain.utils.checks import name_of

__all__ = ["MonitorPool", "resolve_target"]


def resolve_target(observed: Any, attr: str) -> tuple[nn.Module, str]:
    """The module a monitor of ``observed`` hooks and the path of ``attr`` relative to it.

    A cell (an object with ``layer`` and ``resolve(attr)``, such as
    :class:`celltrain.neural.Cell`) is observed through its layer: the result is
    ``(observed.layer, observed.resolve(attr))``, e.g. ``"neuron.spike"`` ->
    ``"neurons.exc.spike"``. Any other :class:`~torch.nn.Module` is its own target and ``attr``
    is used as is.

    Raises:
        AttributeError: the cell cannot resolve ``attr``.
        TypeError: ``observed`` is neither a cell nor a module.
    """
    if _is_cell(observed):
        return observed.layer, observed.resolve(attr)
    _check_observed(observed)
    return observed, attr


def _is_cell(observed: Any) -> bool:
    return hasattr(observed, "layer") and callable(getattr(observed, "resolve", None))


def _check_observed(observed: Any) -> None:
    if not (_is_cell(observed) or isinstance(observed, nn.Module)):
        raise TypeError(
            "observed object must be a cell (with 'layer' and 'resolve') or an nn.Module, "
            f"got {type(observed).__name__}"
        )


@dataclass(eq=False)
class _Request:
    """One ``add_monitor`` request, as far as aliasing is concerned, and its monitor."""

    target: nn.Module
    attr: str
    name: str
    constructor: Callable[[str, nn.Module], Monitor]
    tags: dict[str, Any]
    unique: bool
    monitor: Monitor

    def same(self, other: _Request) -> bool:
        """Whether ``other`` asks for the very monitor this request got."""
        return (
            self.target is other.target
            and self.attr == other.attr
            and self.name == other.name
            and self.constructor == other.constructor
            and same_config(self.tags, other.tags)
        )


class MonitorPool(nn.Module):
    """Monitors of named observed objects (usually cells), each distinct monitor built once.

    Observed objects are held by reference, never as submodules (a cell's layer owns the
    cell). The pool owns its monitors as submodules, each distinct monitor once, so ``.to()``
    and ``state_dict()`` reach the reducers' state (keys ``_owned.<observed>.<name>...`` of
    the first remaining request that uses the monitor).

    Aliasing: a request ``add_monitor(observed, name, attr, constructor, **tags)`` shares an
    existing monitor only when the target layer is the same object, the attribute path
    resolved against it is the same, the monitor name is the same, the constructors are equal
    (see :class:`MonitorConstructor`) and the tags are equal. Monitors of different layers (or
    of different pools) never alias. A monitor made with ``unique=True`` is never shared.

    Monitors added while the pool is in training mode record; in evaluation mode they start
    deregistered. :meth:`train` registers or deregisters every monitor.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> layer = Layer({"n": LIF(2)}, {"a": ("input", "n", Linear(1, 2)),
        ...                               "b": ("input", "n", Linear(1, 2))})
        >>> pool = MonitorPool()
        >>> pool.add_observed("a", layer.cell("a")); pool.add_observed("b", layer.cell("b"))
        >>> first = pool.add_monitor("a", "spikes", "neuron.spike", Monitor.partial(Count))
        >>> first is pool.add_monitor("b", "spikes", "neuron.spike", Monitor.partial(Count))
        True
    """

    def __init__(self) -> None:
        super().__init__()
        self._observed: dict[str, Any] = {}
        self._requests: dict[str, dict[str, _Request]] = {}
        self._owned = nn.ModuleDict()

    def _requests_of(self, observed: str) -> dict[str, _Request]:
        try:
            return self._requests[observed]
        except (KeyError, TypeError):
            raise AttributeError(
                f"no observed object named {observed!r} (observed: {sorted(self._requests)})"
            ) from None

    def add_observed(self, name: str, observed: Any) -> None:
        """Add an object whose attributes monitors can record.

        Args:
            name: name of the observed object (non-empty, no ``.``).
            observed: a cell (with ``layer`` and ``resolve``) or an :class:`~torch.nn.Module`.

        Raises:
            ValueError: ``name`` is already used or not a valid name.
            TypeError: ``observed`` is neither a cell nor a module.
        """
        name_of("observed", name)
        if name in self._observed:
            raise ValueError(f"an observed object named {name!r} already exists")
        _check_observed(observed)
        self._observed[name] = observed
        self._requests[name] = {}

    def del_observed(self, name: str) -> None:
        """Remove an observed object and its monitors (deregistered and dropped unless another
        observed object still uses them).

        Raises:
            AttributeError: no observed object named ``name``.
        """
        for monitor_name in list(self._requests_of(name)):
            self._release(name, monitor_name)
        del self._requests[name], self._observed[name]

    def add_monitor(
        self,
        observed: str,
        name: str,
        attr: str,
        monitor_constructor: MonitorConstructor | Callable[[str, nn.Module], Monitor],
        unique: bool = False,
        /,
        **tags: Any,
    ) -> Monitor:
        """Add (or retrieve a shared) monitor of ``observed``'s attribute ``attr``.

        Args:
            observed: name of the observed object.
            name: name of the monitor (unique per observed object).
            attr: dotted attribute relative to the observed object (for a cell e.g.
                ``"neuron.spike"`` or ``"connection.synapse.spike"``).
            monitor_constructor: ``(attr, module) -> Monitor`` building a fresh monitor, e.g.
                ``Monitor.partial(Trace, tau=20.0)``.
            unique: never share: build a new monitor, replacing any monitor ``name`` of
                ``observed`` (which is deregistered and dropped unless still used elsewhere).
            **tags: further properties two requests must agree on to share a monitor.

        Returns:
            The new or shared monitor.

        Raises:
            AttributeError: no observed object named ``observed``, or ``attr`` does not exist.
            ValueError: ``observed`` already has a different monitor ``name`` (and ``unique``
                is false), or ``name`` is not a valid name.
            TypeError: ``monitor_constructor`` did not return a :class:`Monitor`.
        """
        requests = self._requests_of(observed)
        name_of("monitor", name)
        target, path = resolve_target(self._observed[observed], attr)
        request = _Request(target, path, name, monitor_constructor, dict(tags), unique, None)
        existing = requests.get(name)
        if existing is not None and not unique:
            if existing.same(request):
                return existing.monitor
            raise ValueError(
                f"{observed!r} already has a monitor {name!r} of another attribute, "
                "constructor or tags; delete it first or pass unique=True to replace it"
            )
        if not unique:
            for _, other in self._named_requests():
                if not other.unique and other.same(request):
                    request.monitor = other.monitor
                    requests[name] = request
                    return other.monitor
        monitor = monitor_constructor(path, target)
        if not isinstance(monitor, Monitor):
            raise TypeError(
                f"monitor_constructor must return a Monitor, got {type(monitor).__name__}"
            )
        if self.training:
            monitor.register()
        else:
            monitor.deregister()
        if existing is not None:
            self._release(observed, name)
        request.monitor = monitor
        requests[name] = request
        self._own(observed, name, monitor)
        return monitor

    def get_monitor(self, observed: str, name: str) -> Monitor | None:
        """The monitor ``name`` of ``observed``, ``None`` if it has none of that name.

        Raises:
            AttributeError: no observed object named ``observed``.
        """
        request = self._requests_of(observed).get(name)
        return None if request is None else request.monitor

    def del_monitor(self, observed: str, name: str) -> None:
        """Remove monitor ``name`` of ``observed``; the monitor itself is deregistered and
        dropped only if no other observed object uses it.

        Raises:
            AttributeError: no observed object ``observed`` or it has no monitor ``name``.
        """
        if name not in self._requests_of(observed):
            raise AttributeError(
                f"{observed!r} has no monitor named {name!r} "
                f"(monitors: {sorted(self._requests[observed])})"
            )
        self._release(observed, name)

    @property
    def monitors(self) -> Iterator[Monitor]:
        """Every distinct monitor once (fewer than the requests where monitors are shared)."""
        seen: set[int] = set()
        for _, monitor in self.named_monitors:
            if id(monitor) not in seen:
                seen.add(id(monitor))
                yield monitor

    @property
    def named_monitors(self) -> Iterator[tuple[tuple[str, str], Monitor]]:
        """``((observed, name), monitor)`` per request: a shared monitor once per request."""
        for key, request in self._named_requests():
            yield key, request.monitor

    def named_monitors_of(self, observed: str) -> Iterator[tuple[str, Monitor]]:
        """``(name, monitor)`` of every monitor of ``observed``.

        Raises:
            AttributeError: no observed object named ``observed``.
        """
        requests = self._requests_of(observed)
        return iter([(name, request.monitor) for name, request in requests.items()])

    def train(self, mode: bool = True) -> MonitorPool:
        """Set the mode and register (``mode=True``) or deregister every monitor; monitor
        content is kept (see :meth:`clear`). Returns ``self``."""
        super().train(mode)
        for monitor in self.monitors:
            if mode:
                monitor.register()
            else:
                monitor.deregister()
        return self

    def clear(self, **kwargs: Any) -> None:
        """Empty every monitor (keyword arguments go to each ``Monitor.clear``)."""
        for monitor in self.monitors:
            monitor.clear(**kwargs)

    def _named_requests(self) -> Iterator[tuple[tuple[str, str], _Request]]:
        for observed, requests in self._requests.items():
            for name, request in requests.items():
                yield (observed, name), request

    def _own(self, observed: str, name: str, monitor: Monitor) -> None:
        # Written into _modules directly: names only have to be free of '.', even names such
        # as "keys" that ModuleDict would refuse as clashing with its methods.
        inner = self._owned._modules.get(observed)
        if inner is None:
            inner = self._owned._modules[observed] = nn.ModuleDict()
        inner._modules[name] = monitor

    def _release(self, observed: str, name: str) -> None:
        """Drop request ``(observed, name)``; keep its monitor only if another request uses
        it (then owned under that request's key), else deregister it."""
        monitor = self._requests[observed].pop(name).monitor
        users = [key for key, request in self._named_requests() if request.monitor is monitor]
        inner = self._owned._modules.get(observed)
        if inner is not None and inner._modules.get(name) is monitor:
            del inner._modules[name]
            if not inner._modules:
                del self._owned._modules[observed]
            if users:
                self._own(*users[0], monitor)
        if not users:
            monitor.deregister()

    def extra_repr(self) -> str:
        return f"observed={list(self._observed)}"
