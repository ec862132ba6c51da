"""The wiring of neurons and connections, stepped once per time step, and its cells."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from celltrain.neural.connections import Connection
from celltrain.neural.neurons import Neuron
from celltrain.neural.updater import Updater
from celltrain.utils.checks import batched, name_of, positive
from celltrain.utils.gradient import gradient_free


class Layer(nn.Module):
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
                raise type(error)(f"connection {name!r} from {source!r}: {error}") from None
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
        return out

    @gradient_free
    def run(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Advance ``T`` time steps at once; the same as ``T`` calls of :meth:`forward`.

        Connections from external inputs map all ``T`` steps together before the loop over
        time (one matrix product for ``T * B`` samples instead of ``T`` small ones, in chunks of
        at most ``window_elements`` current values); inside the loop only the recurrent
        connections and the neurons step, without :meth:`forward`'s per-step argument checks.

        Forward hooks of the layer that follow the window protocol (every
        :class:`~celltrain.observe.Monitor`'s hook does) are not called after each step: the
        layer keeps the value of each recorded attribute at every step and hands the hook the
        window ``(T, B, *shape)`` once, at the end (``hook.record_window(layer, values)``; the
        hook names its attribute with ``hook.window_path()`` and says it can with
        ``hook.window_capable()``). When any other hook is attached (to the layer, one of its
        components, or globally), or a monitor records synapse state that the window computes
        ahead of time, :meth:`run` falls back to calling :meth:`forward` once per step, so hooks
        always see what they would see step by step.

        Neurons are told about the window (:meth:`~Neuron.begin_window`,
        :meth:`~Neuron.end_window`), so :class:`~celltrain.neural.ALIF` adds its threshold
        learning once per window instead of once per step.

        Args:
            **inputs: one bool spike tensor ``(T, B, *in_shape)`` per declared input name, all
                with the same ``T >= 1`` and ``B``.

        Returns:
            dict neuron name -> spikes of every step ``(T, B, *shape)`` (bool).

        Raises:
            ValueError: wrong input names, shapes or step counts; TypeError: non-bool spikes.
        """
        if set(inputs) != set(self.inputs) or not inputs:
            raise ValueError(
                f"run() takes exactly the inputs {sorted(self.inputs)}, got {sorted(inputs)}"
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
        plan = self._window_plan()
        if plan is None:
            return self._run_stepwise(inputs, steps)
        hooks, captured = plan

        fed = [(n, c, *self.wiring[n]) for n, c in self.connections.items()]
        external = [(c, source, target) for _, c, source, target in fed if source in inputs]
        recurrent = [(c, source, target) for _, c, source, target in fed if source not in inputs]
        for name, connection, source, _ in fed:
            first = inputs[source][0] if source in inputs else None
            try:
                if first is not None:
                    batched("spikes", first, connection.in_shape)
                    connection.synapse.prepare("spikes", first)
            except (ValueError, TypeError) as error:
                raise type(error)(f"connection {name!r} from {source!r}: {error}") from None
        neurons = list(self.neurons.items())
        dtype = torch.get_default_dtype()
        device = next(iter(inputs.values())).device
        resting = {}
        for name, neuron in neurons:
            neuron.prepare(torch.zeros((batch, *neuron.shape), dtype=dtype, device=device))
            resting[name] = torch.zeros_like(neuron.voltage)
        for connection, source, _ in recurrent:
            connection.synapse.prepare("spike", self.neurons[source].spike)

        # chunks of time small enough that a chunk's inputs (as floats) and currents stay
        # within window_elements each: fresh large allocations cost more than the arithmetic
        shapes = [shape for c, _, _ in external for shape in (c.in_shape, c.out_shape)]
        step_elements = max((batch * math.prod(shape) for shape in shapes), default=1)
        chunk = max(1, min(steps, self.window_elements // step_elements))
        spikes_out: dict[str, list[torch.Tensor]] = {name: [] for name, _ in neurons}
        per_step = [(path, o, leaf, []) for path, (o, leaf) in captured.items() if o is not None]
        for component in (*self.neurons.values(), *self.connections.values()):
            component.begin_window()
        out: dict[str, torch.Tensor] = {}
        try:
            for start in range(0, steps, chunk):
                driven: dict[str, torch.Tensor] = {}
                for connection, source, target in external:
                    current = connection.run(inputs[source][start : start + chunk])
                    driven[target] = driven[target] + current if target in driven else current
                for offset in range(min(chunk, steps - start)):
                    previous = {name: neuron._buffers["spike"] for name, neuron in neurons}
                    currents = {target: window[offset] for target, window in driven.items()}
                    for connection, source, target in recurrent:
                        currents[target] = connection.accumulate(
                            currents.get(target), previous[source]
                        )
                    for name, neuron in neurons:
                        current = currents.get(name)
                        spikes_out[name].append(
                            neuron.advance(resting[name] if current is None else current)
                        )
                    for _, owner, leaf, values in per_step:
                        values.append(getattr(owner, leaf))
            out = {name: torch.stack(values) for name, values in spikes_out.items()}
        finally:
            for name, neuron in neurons:  # after an error: the steps that were taken
                taken = out.get(name)
                if taken is None and spikes_out[name]:
                    taken = torch.stack(spikes_out[name])
                neuron.end_window(taken)
            for connection in self.connections.values():
                connection.end_window()
        windows: dict[str, torch.Tensor] = {}
        for path, _, _, values in per_step:
            if not all(isinstance(v, torch.Tensor) for v in values):
                raise TypeError(f"monitored attribute {path!r} of the layer does not hold a tensor")
            windows[path] = torch.stack(values)
        for path, (owner, source) in captured.items():
            if owner is None:  # a neuron's spikes or an input: already at hand
                windows[path] = out[source] if source in out else inputs[source]
        for hook, path in hooks:
            hook.record_window(self, windows[path])
        return out

    #: most values (elements) of one input connection's inputs or currents that one chunk of
    #: :meth:`run` precomputes
    window_elements = 1 << 20

    def _window_plan(self) -> tuple[list, dict] | None:
        """The window hooks and the attributes to keep per step, or None when :meth:`run` must
        call :meth:`forward` step by step (a hook that cannot take a window)."""
        module_hooks = torch.nn.modules.module
        if (
            self._forward_pre_hooks
            or module_hooks._global_forward_hooks
            or module_hooks._global_forward_pre_hooks
        ):
            return None
        for module in self.modules():
            if module is not self and (module._forward_hooks or module._forward_pre_hooks):
                return None
        hooks = []
        captured: dict[str, tuple[nn.Module | None, str]] = {}
        for hook in self._forward_hooks.values():
            capable = getattr(hook, "window_capable", None)
            if capable is None or not capable():
                return None
            path = hook.window_path()
            if path is None:
                continue
            hooks.append((hook, path))
            if path in captured:
                continue
            parts = path.split(".")
            if len(parts) == 3 and parts[0] == "neurons" and parts[2] == "spike":
                captured[path] = (None, parts[1])  # the run's own output
            elif len(parts) >= 3 and parts[0] == "connections" and parts[2] == "synapse":
                source = self.wiring[parts[1]][0] if parts[1] in self.wiring else None
                if source in self.inputs:
                    if parts[3:] != ["spike"]:
                        return None  # that synapse runs ahead of the loop: step by step
                    captured[path] = (None, source)  # the input itself
                else:
                    captured[path] = (self.get_submodule(".".join(parts[:-1])), parts[-1])
            else:
                owner = self.get_submodule(".".join(parts[:-1])) if len(parts) > 1 else self
                captured[path] = (owner, parts[-1])
        return hooks, captured

    def _run_stepwise(self, inputs: dict[str, torch.Tensor], steps: int) -> dict[str, torch.Tensor]:
        outs = [self(**{name: spikes[t] for name, spikes in inputs.items()}) for t in range(steps)]
        return {name: torch.stack([out[name] for out in outs]) for name in self.neurons}

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


class Cell:
    """What a learning rule sees of one connection: the connection and its target neuron.

    The :class:`Layer` owns its cells (``layer.cell(name)``); trainers only hold them. Moving the
    layer (``layer.to(...)``) moves what a cell refers to.

    Attributes:
        layer: the owning layer.
        name: the connection's name in the layer.
        source: the source name (input or neuron).
        target: the target neuron's name.
    """

    def __init__(self, layer: Layer, name: str) -> None:
        self.layer = layer
        self.name = name
        self.source, self.target = layer.wiring[name]

    @property
    def connection(self) -> Connection:
        """The connection (owns weight, synapse and updater)."""
        return self.layer.connections[self.name]

    @property
    def neuron(self) -> Neuron:
        """The target neuron population."""
        return self.layer.neurons[self.target]

    @property
    def updater(self) -> Updater:
        """The connection's updater."""
        return self.connection.updater

    @property
    def updaters(self) -> list[Updater]:
        """Every updater a trainer of this cell applies: the connection's, then the target
        neuron's if it has one (e.g. ALIF's theta)."""
        found = [self.connection.updater]
        if self.neuron.updater is not None:
            found.append(self.neuron.updater)
        return found

    def resolve(self, attr: str) -> str:
        """Map a cell-relative dotted path to one relative to the layer.

        ``"neuron.spike"`` -> ``"neurons.<target>.spike"``,
        ``"connection.synapse.spike"`` -> ``"connections.<name>.synapse.spike"``.

        Raises:
            AttributeError: the path does not start with ``neuron`` or ``connection`` or does
                not exist.
        """
        head, _, rest = attr.partition(".")
        prefixes = {"neuron": f"neurons.{self.target}", "connection": f"connections.{self.name}"}
        if head not in prefixes:
            raise AttributeError(
                "attr must start with 'neuron' or 'connection' (relative to the cell), "
                f"got {attr!r}"
            )
        path = prefixes[head] + (f".{rest}" if rest else "")
        obj: object = self.layer
        for part in path.split("."):
            if not hasattr(obj, part):
                raise AttributeError(f"cell {self.name!r}: {attr!r} does not exist ({path!r})")
            obj = getattr(obj, part)
        return path

    def __repr__(self) -> str:
        return f"Cell({self.name!r}: {self.source!r} -> {self.target!r})"
