"""The view a learning rule has of one connection of a layer: :class:`Cell`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celltrain.neural.connections import Connection
from celltrain.neural.neurons import Neuron
from celltrain.neural.updater import Updater

if TYPE_CHECKING:
    from celltrain.neural.layer import Layer


class Cell:
    """What a learning rule sees of one connection: the connection and its target neuron.

    The :class:`Layer` owns its cells (``layer.cell(name)``); trainers only hold them. Moving the
    layer (``layer.to(...)``) moves what a cell refers to.

    Attributes:
        layer: the owning layer.
        name: the connection's name in the layer.
        source: the source name (input or neuron).
        target: the target neuron's name.

    Example::

        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(3, 2))})
        >>> cell = layer.cell("in")
        >>> cell, cell.resolve("neuron.spike")
        (Cell('in': 'input' -> 'n'), 'neurons.n.spike')
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
