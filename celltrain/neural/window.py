"""Multi-step simulation: the :class:`WindowObserver` interface and the engine behind
:meth:`~celltrain.neural.Layer.run`.

A layer steps once per ``forward`` call. ``layer.run(**inputs)`` advances ``T`` steps at once
with the same result: connections from external inputs map all ``T`` steps in one product
before the loop over time, and only the recurrent connections and the neurons step inside it,
without ``forward``'s per-step checks. What watches the layer is declared:

- an observer (a :class:`WindowObserver`, e.g. every :class:`~celltrain.observe.Monitor` of a
  layer) registers with :meth:`~celltrain.neural.Layer.add_observer`; the layer calls its
  :meth:`~WindowObserver.record` after each ``forward`` step and its
  :meth:`~WindowObserver.record_window` once after a ``run``, with the observed attribute's
  value at every step;
- any other forward hook or forward pre-hook, on the layer or on one of its components, or a
  global module hook, must see each step: :func:`run` then falls back to calling ``forward``
  once per step, so such hooks see exactly what they would see step by step. So does an
  observer whose :attr:`~WindowObserver.takes_windows` is False, or one that observes the
  state of a synapse whose steps :func:`run` computes ahead of the loop (other than its
  ``spike``: the input itself).

Hooks are found with public API only: the neural modules override ``register_forward_hook``
and ``register_forward_pre_hook`` to keep the handles (:class:`HookedModule`), and a handle's
``hooks_dict_ref`` tells whether its hook is still registered.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.utils.hooks import RemovableHandle

from celltrain.utils.checks import batched

if TYPE_CHECKING:
    from celltrain.neural.layer import Layer


class WindowObserver(ABC):
    """Records one attribute of a :class:`~celltrain.neural.Layer` after each step, or a window
    of steps at once.

    Register with ``layer.add_observer(observer)`` (the layer holds it weakly: an observer
    that is garbage collected stops observing) and leave with ``layer.remove_observer``.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> class Counter(WindowObserver):
        ...     path, steps = "neurons.n.spike", 0
        ...     def record(self, value):
        ...         self.steps += 1
        ...     def record_window(self, values):
        ...         self.steps += values.shape[0]
        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(3, 2))})
        >>> counter = Counter()
        >>> layer.add_observer(counter)
        >>> _ = layer.run(input=torch.zeros(5, 1, 3, dtype=torch.bool))
        >>> _ = layer(input=torch.zeros(1, 3, dtype=torch.bool))
        >>> counter.steps
        6
    """

    @property
    @abstractmethod
    def path(self) -> str:
        """The dotted attribute path observed, relative to the layer (e.g.
        ``"neurons.exc.spike"``)."""

    @abstractmethod
    def record(self, value: torch.Tensor) -> None:
        """Take the attribute's value after one step (any shape ``(*S)``)."""

    @abstractmethod
    def record_window(self, values: torch.Tensor) -> None:
        """Take the attribute's values after each of ``T`` steps, ``(T, *S)``, oldest first."""

    @property
    def takes_windows(self) -> bool:
        """Whether :meth:`record_window` may stand in for ``T`` calls of :meth:`record`; an
        observer that must see each step on its own returns False (``Layer.run`` then steps
        one ``forward`` at a time while it is registered)."""
        return True


def _noop(*args: Any) -> None:
    return None


def _global_hooks() -> tuple[dict, dict]:
    """The registries of global forward hooks and pre-hooks, through the handle of a no-op
    hook registered and removed at once (public API: ``RemovableHandle.hooks_dict_ref``)."""
    registries = []
    for register in (register_module_forward_hook, register_module_forward_pre_hook):
        handle = register(_noop)
        handle.remove()
        registries.append(handle.hooks_dict_ref())
    return registries[0], registries[1]


_GLOBAL_FORWARD_HOOKS, _GLOBAL_FORWARD_PRE_HOOKS = _global_hooks()


class HookedModule(nn.Module):
    """A module that knows whether forward hooks are registered on it (:meth:`has_hooks`),
    through the handles its ``register_forward_hook`` / ``register_forward_pre_hook`` return.
    The neural components and the layer derive from it, so :func:`run` can tell when it must
    step one ``forward`` at a time. A deep copy keeps torch's copy of the hooks and handles
    that refer to it, so a copy knows its hooks too.

    Example::

        >>> lif = LIF(2)
        >>> handle = lif.register_forward_hook(lambda module, args, out: None)
        >>> lif.has_hooks()
        True
        >>> handle.remove(); lif.has_hooks()
        False
    """

    def register_forward_hook(self, hook: Callable, **kwargs: Any) -> RemovableHandle:
        handle = super().register_forward_hook(hook, **kwargs)
        self.__dict__.setdefault("_hook_handles", []).append(handle)
        return handle

    def register_forward_pre_hook(self, hook: Callable, **kwargs: Any) -> RemovableHandle:
        handle = super().register_forward_pre_hook(hook, **kwargs)
        self.__dict__.setdefault("_hook_handles", []).append(handle)
        return handle

    def has_hooks(self) -> bool:
        """Whether a forward hook or forward pre-hook registered through this module's methods
        is still registered (removed hooks are forgotten)."""
        handles = self.__dict__.get("_hook_handles")
        if not handles:
            return False
        live = [h for h in handles if (d := h.hooks_dict_ref()) is not None and h.id in d]
        self.__dict__["_hook_handles"] = live
        return bool(live)


def steps_one_at_a_time(layer: Layer) -> bool:
    """Whether :func:`run` must call ``forward`` once per step: a hook is registered on the
    layer, on one of its components, or globally, or an observer cannot take windows."""
    if _GLOBAL_FORWARD_HOOKS or _GLOBAL_FORWARD_PRE_HOOKS:
        return True
    for module in layer.modules():
        if isinstance(module, HookedModule) and module.has_hooks():
            return True
    return any(not observer.takes_windows for observer in layer.observers())


def _sources(layer: Layer, inputs: dict[str, torch.Tensor], paths: set[str]) -> dict | None:
    """Where each observed path's per-step values come from: ``("output", neuron)``,
    ``("input", name)`` or ``("capture", owner module, attribute)``; None when a path names
    state that the window computes ahead of the loop (step by step then)."""
    sources: dict[str, tuple] = {}
    for path in paths:
        parts = path.split(".")
        if len(parts) == 3 and parts[0] == "neurons" and parts[2] == "spike":
            sources[path] = ("output", parts[1])
            continue
        if len(parts) >= 3 and parts[0] == "connections" and parts[2] == "synapse":
            source = layer.wiring[parts[1]][0] if parts[1] in layer.wiring else None
            if source in inputs:
                if parts[3:] != ["spike"]:
                    return None  # that synapse runs ahead of the loop
                sources[path] = ("input", source)
                continue
        owner = layer.get_submodule(".".join(parts[:-1])) if len(parts) > 1 else layer
        sources[path] = ("capture", owner, parts[-1])
    return sources


def check_window(layer: Layer, inputs: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Check ``run``'s inputs: every declared input, ``(T, B, ...)`` with one ``T >= 1`` and
    ``B``; returns ``(T, B)``."""
    if set(inputs) != set(layer.inputs) or not inputs:
        raise ValueError(
            f"run() takes exactly the inputs {sorted(layer.inputs)}, got {sorted(inputs)}"
        )
    steps = batch = None
    for name, spikes in inputs.items():
        if not isinstance(spikes, torch.Tensor) or spikes.dim() < 2 or spikes.shape[0] < 1:
            shape = tuple(spikes.shape) if isinstance(spikes, torch.Tensor) else spikes
            raise ValueError(f"{name} must be spikes (T, B, ...) with T >= 1, got {shape!r}")
        if steps is None:
            steps, batch = spikes.shape[:2]
        elif spikes.shape[:2] != (steps, batch):
            raise ValueError(
                f"every input must have the same (T, B) = {(steps, batch)}, "
                f"{name} has {tuple(spikes.shape[:2])}"
            )
    return steps, batch


def run_stepwise(layer: Layer, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``T`` calls of ``layer(...)``; the spikes of every step, ``(T, B, *shape)`` per neuron."""
    steps = next(iter(inputs.values())).shape[0]
    outs = [layer(**{name: spikes[t] for name, spikes in inputs.items()}) for t in range(steps)]
    return {name: torch.stack([out[name] for out in outs]) for name in layer.neurons}


def run(layer: Layer, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Advance ``layer`` by ``T`` steps of ``inputs`` (the engine of ``Layer.run``, which
    documents it); returns each neuron's spikes ``(T, B, *shape)``."""
    steps, batch = check_window(layer, inputs)
    observers = layer.observers()
    sources = _sources(layer, inputs, {o.path for o in observers})
    if sources is None or steps_one_at_a_time(layer):
        return run_stepwise(layer, inputs)

    fed = [(n, c, *layer.wiring[n]) for n, c in layer.connections.items()]
    external = [(c, source, target) for _, c, source, target in fed if source in inputs]
    recurrent = [(c, source, target) for _, c, source, target in fed if source not in inputs]
    for name, connection, source, _ in fed:
        if source in inputs:
            try:
                first = inputs[source][0]
                batched("spikes", first, connection.in_shape)
                connection.synapse.prepare("spikes", first)
            except (ValueError, TypeError) as error:
                # the same exception type (these take one message), with its origin chained
                raise type(error)(f"connection {name!r} from {source!r}: {error}") from error
    neurons = list(layer.neurons.items())
    dtype = torch.get_default_dtype()
    device = next(iter(inputs.values())).device
    resting = {}
    for name, neuron in neurons:
        neuron.prepare(torch.zeros((batch, *neuron.shape), dtype=dtype, device=device))
        resting[name] = torch.zeros_like(neuron.voltage)
    for connection, source, _ in recurrent:
        connection.synapse.prepare("spike", layer.neurons[source].spike)

    # chunks of time small enough that a chunk's inputs (as floats) and currents stay within
    # window_elements each: fresh large allocations cost more than the arithmetic
    shapes = [shape for c, _, _ in external for shape in (c.in_shape, c.out_shape)]
    step_elements = max((batch * math.prod(shape) for shape in shapes), default=1)
    chunk = max(1, min(steps, layer.window_elements // step_elements))
    spikes_out: dict[str, list[torch.Tensor]] = {name: [] for name, _ in neurons}
    captured = {
        path: (source[1], source[2], [])
        for path, source in sources.items()
        if source[0] == "capture"
    }
    for component in (*layer.neurons.values(), *layer.connections.values()):
        component.begin_window()
    out: dict[str, torch.Tensor] = {}
    try:
        for start in range(0, steps, chunk):
            driven: dict[str, torch.Tensor] = {}
            for connection, source, target in external:
                current = connection.run(inputs[source][start : start + chunk])
                driven[target] = driven[target] + current if target in driven else current
            for offset in range(min(chunk, steps - start)):
                previous = {name: neuron.spike for name, neuron in neurons}
                currents = {target: window[offset] for target, window in driven.items()}
                for connection, source, target in recurrent:
                    currents[target] = connection.accumulate(currents.get(target), previous[source])
                for name, neuron in neurons:
                    current = currents.get(name)
                    spikes_out[name].append(
                        neuron.advance(resting[name] if current is None else current)
                    )
                for owner, leaf, values in captured.values():
                    values.append(getattr(owner, leaf))
        out = {name: torch.stack(values) for name, values in spikes_out.items()}
    finally:
        for name, neuron in neurons:  # after an error: the steps that were taken
            taken = out.get(name)
            if taken is None and spikes_out[name]:
                taken = torch.stack(spikes_out[name])
            neuron.end_window(taken)
        for connection in layer.connections.values():
            connection.end_window()
    windows: dict[str, torch.Tensor] = {}
    for path, source in sources.items():
        if source[0] == "output":
            windows[path] = out[source[1]]
        elif source[0] == "input":
            windows[path] = inputs[source[1]]
        else:
            values = captured[path][2]
            if not all(isinstance(v, torch.Tensor) for v in values):
                raise TypeError(f"monitored attribute {path!r} of the layer does not hold a tensor")
            windows[path] = torch.stack(values)
    for observer in observers:
        observer.record_window(windows[observer.path])
    return out


class Observers:
    """The observers of one layer, held weakly, in the order they were added."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, observer: WindowObserver) -> None:
        if not isinstance(observer, WindowObserver):
            raise TypeError(f"observer must be a WindowObserver, got {type(observer).__name__}")
        key = id(observer)
        self._refs[key] = weakref.ref(observer, lambda _, key=key: self._refs.pop(key, None))

    def remove(self, observer: WindowObserver) -> None:
        self._refs.pop(id(observer), None)

    def __contains__(self, observer: object) -> bool:
        ref = self._refs.get(id(observer))
        return ref is not None and ref() is observer

    def live(self) -> list[WindowObserver]:
        return [o for ref in list(self._refs.values()) if (o := ref()) is not None]

    def __len__(self) -> int:
        return len(self.live())

    def __deepcopy__(self, memo: dict) -> Observers:
        return Observers()  # a copy of a layer starts unobserved

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return Observers, ()
