"""The wiring of neurons and connections, stepped once per time step, and its cells."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from celltrain.neural import window
from celltrain.neural.cell import Cell
from celltrain.neural.connections import Connection
from celltrain.neural.neurons import Neuron
from celltrain.neural.window import HookedModule, Observers
from celltrain.utils.checks import name_of, positive
from celltrain.utils.gradient import gradient_free


class Layer(HookedModule):
    """Named neurons and connections advanced together, one time step per call.

    Each connection names its ``source`` (an external input named in ``inputs``, or a neuron of
    this layer) and its ``target`` neuron. ``forward(**inputs)`` maps every connection, sums the
    currents that reach each neuron, steps each neuron exactly once and returns every neuron's
    spikes. A connection whose source is a neuron of the layer reads that neuron's spikes of the
    *previous* step (zeros on the first step after :meth:`reset`), so recurrent loops such as
    excitatory -> inhibitory -> excitatory need no ordering and every neuron steps once.

    ``layer.dt`` (ms) is the single time step of the network: setting it sets it on every neuron
    and synapse of the layer.

    Args:
        neurons: mapping name -> :class:`~celltrain.neural.neurons.Neuron`.
        connections: mapping name -> ``(source, target, connection)``.
        inputs: names of the external inputs that ``forward`` takes as keyword arguments.
        dt: time step (ms, > 0).

    Attributes:
        neurons (nn.ModuleDict): the neurons by name.
        connections (nn.ModuleDict): the connections by name.
        wiring (dict[str, tuple[str, str]]): connection name -> (source, target).

    Example::

        >>> layer = Layer(
        ...     {"exc": LIF(2), "inh": LIF(2)},
        ...     {"in": ("input", "exc", Linear(3, 2, weight=torch.full((2, 3), 500.0))),
        ...      "ei": ("exc", "inh", Direct(2, weight=torch.full((2,), 1000.0)))},
        ... )
        >>> out = layer.run(input=torch.ones(3, 1, 3, dtype=torch.bool))  # 3 steps at once
        >>> out["exc"][:, 0, 0].tolist(), out["inh"][:, 0, 0].tolist()  # inh one step later
        ([True, True, True], [False, True, True])
    """

    def __init__(
        self,
        neurons: Mapping[str, Neuron],
        connections: Mapping[str, tuple[str, str, Connection]],
        inputs: Sequence[str] = ("input",),
        dt: float = 1.0,
    ) -> None:
        super().__init__()
        self.inputs = tuple(name_of("input", n) for n in inputs)
        self.neurons = nn.ModuleDict()
        for name, neuron in neurons.items():
            if not isinstance(neuron, Neuron):
                raise TypeError(f"neurons[{name!r}] must be a Neuron, got {type(neuron).__name__}")
            if name in self.inputs:
                raise ValueError(f"neuron name {name!r} is also an input name")
            self.neurons[name_of("neuron", name)] = neuron
        self.connections = nn.ModuleDict()
        self.wiring: dict[str, tuple[str, str]] = {}
        for name, wiring in connections.items():
            self._connect(name_of("connection", name), *wiring)
        self._cells: dict[str, Cell] = {}
        self._observers = Observers()  # WindowObservers, held weakly (add_observer)
        self._paths: dict[str, tuple[str, ...]] = {}  # observed path -> its parts
        self.dt = dt

    def _connect(self, name: str, source: str, target: str, connection: Connection) -> None:
        if not isinstance(connection, Connection):
            raise TypeError(
                f"connection {name!r} must be a Connection, got {type(connection).__name__}"
            )
        if target not in self.neurons:
            raise KeyError(
                f"connection {name!r}: target {target!r} is not a neuron of the layer "
                f"(neurons: {sorted(self.neurons)})"
            )
        if source in self.neurons:
            source_shape = self.neurons[source].shape
        elif source in self.inputs:
            source_shape = None
        else:
            raise KeyError(
                f"connection {name!r}: source {source!r} is neither a neuron "
                f"{sorted(self.neurons)} nor an input {list(self.inputs)}"
            )
        if source_shape is not None and source_shape != connection.in_shape:
            raise ValueError(
                f"connection {name!r}: in_shape {connection.in_shape} does not match source "
                f"{source!r} of shape {source_shape}"
            )
        if connection.out_shape != self.neurons[target].shape:
            raise ValueError(
                f"connection {name!r}: out_shape {connection.out_shape} does not match target "
                f"{target!r} of shape {self.neurons[target].shape}"
            )
        try:
            connection.synapse.check_target(target, self.neurons[target])
        except ValueError as error:
            raise ValueError(f"connection {name!r}: {error}") from None
        self.connections[name] = connection
        self.wiring[name] = (source, target)

    @property
    def dt(self) -> float:
        """Time step of the whole layer in ms; setting it reaches every neuron and synapse."""
        return self._dt

    @dt.setter
    def dt(self, value: float) -> None:
        self._dt = positive("dt", value)
        for neuron in self.neurons.values():
            neuron.dt = self._dt
        for connection in self.connections.values():
            connection.synapse.dt = self._dt

    def reset(self) -> None:
        """Return every neuron and synapse to rest (state is re-created for the next batch)."""
        for neuron in self.neurons.values():
            neuron.reset()
        for connection in self.connections.values():
            connection.synapse.reset()

    @gradient_free
    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Advance one time step.

        Args:
            **inputs: one bool spike tensor ``(B, *in_shape)`` per declared input name.

        Returns:
            dict neuron name -> spikes of this step ``(B, *shape)`` (bool).
        """
        if set(inputs) != set(self.inputs):
            raise ValueError(
                f"forward() takes exactly the inputs {sorted(self.inputs)}, got {sorted(inputs)}"
            )
        batch = next(iter(inputs.values())).shape[0] if inputs else None
        previous = {}
        for name, neuron in self.neurons.items():
            spike = neuron.spike
            if spike.numel() == 0:
                if batch is None:
                    raise ValueError(
                        "a layer without inputs must be stepped after its state "
                        "exists; it has none after reset()"
                    )
                spike = torch.zeros((batch, *neuron.shape), dtype=torch.bool, device=spike.device)
            previous[name] = spike
        currents: dict[str, torch.Tensor] = {}
        for name, connection in self.connections.items():
            source, target = self.wiring[name]
            spikes = inputs[source] if source in inputs else previous[source]
            try:
                current = connection(spikes)
            except (ValueError, TypeError) as error:
                # the same exception type (these take one message), with its origin chained
                raise type(error)(f"connection {name!r} from {source!r}: {error}") from error
            currents[target] = currents[target] + current if target in currents else current
        out = {}
        for name, neuron in self.neurons.items():
            current = currents.get(name)
            if current is None:
                current = torch.zeros(
                    (previous[name].shape[0], *neuron.shape),
                    dtype=neuron.voltage.dtype,
                    device=neuron.voltage.device,
                )
            out[name] = neuron(current)
        self._notify()
        return out

    @gradient_free
    def run(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Advance ``T`` time steps at once; the same as ``T`` calls of :meth:`forward`.

        Connections from external inputs map all ``T`` steps together before the loop over
        time (one matrix product for ``T * B`` samples instead of ``T`` small ones, in chunks of
        at most ``window_elements`` current values); inside the loop only the recurrent
        connections and the neurons step, without :meth:`forward`'s per-step argument checks.
        Observers (:meth:`add_observer`) receive the window once, at the end. A forward hook
        on the layer or a component, a global module hook, an observer that cannot take
        windows, or one of the state of a synapse fed by an input (other than its ``spike``)
        makes it call :meth:`forward` once per step instead, so hooks always see what they
        would see step by step (:mod:`celltrain.neural.window`).

        Neurons and connections are told about the window (``begin_window`` /
        ``end_window``), so :class:`~celltrain.neural.ALIF` adds its threshold learning once
        per window instead of once per step.

        Args:
            **inputs: one bool spike tensor ``(T, B, *in_shape)`` per declared input name, all
                with the same ``T >= 1`` and ``B``.

        Returns:
            dict neuron name -> spikes of every step ``(T, B, *shape)`` (bool).

        Raises:
            ValueError: wrong input names, shapes or step counts; TypeError: non-bool spikes.
        """
        return window.run(self, inputs)

    #: most values (elements) of one input connection's inputs or currents that one chunk of
    #: :meth:`run` precomputes
    window_elements = 1 << 20

    def add_observer(self, observer: window.WindowObserver) -> None:
        """Register ``observer`` (held weakly): it records its attribute after every step.

        Raises:
            TypeError: ``observer`` is not a :class:`~celltrain.neural.WindowObserver`.
            AttributeError: its ``path`` names no attribute of the layer.
        """
        if isinstance(observer, window.WindowObserver):
            self._observed_parts(observer.path)
        self._observers.add(observer)

    def remove_observer(self, observer: window.WindowObserver) -> None:
        """Stop notifying ``observer`` (no-op if it is not registered)."""
        self._observers.remove(observer)

    def observers(self) -> list[window.WindowObserver]:
        """The registered observers that are still alive, in the order they were added."""
        return self._observers.live()

    def has_observer(self, observer: window.WindowObserver) -> bool:
        """Whether ``observer`` is registered."""
        return observer in self._observers

    def _observed_parts(self, path: str) -> tuple[str, ...]:
        parts = self._paths.get(path)
        if parts is None:
            obj: object = self
            for part in path.split("."):
                if not part or not hasattr(obj, part):
                    raise AttributeError(f"layer has no attribute path {path!r} ({part!r})")
                obj = getattr(obj, part)
            parts = self._paths[path] = tuple(path.split("."))
        return parts

    def _notify(self) -> None:
        """Hand every observer the value of its attribute after this step."""
        for observer in self._observers.live():
            value: object = self
            for part in self._observed_parts(observer.path):
                value = getattr(value, part)
            observer.record(value)

    def cell(self, name: str) -> Cell:
        """The :class:`Cell` of connection ``name`` (one object per connection)."""
        if name not in self.connections:
            raise AttributeError(
                f"layer has no connection {name!r} (connections: {sorted(self.connections)})"
            )
        if name not in self._cells:
            self._cells[name] = Cell(self, name)
        return self._cells[name]

    def named_cells(self) -> Iterator[tuple[str, Cell]]:
        """Iterate over ``(connection name, cell)`` for every connection."""
        for name in self.connections:
            yield name, self.cell(name)
