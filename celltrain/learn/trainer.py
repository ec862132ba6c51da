"""The seed API: :class:`CellTrainer`, and :class:`IndependentCellTrainer` for rules that treat
each cell on its own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import nn

from celltrain.neural import Cell, Updater
from celltrain.observe import Monitor, MonitorConstructor, MonitorPool


class CellTrainer(nn.Module):
    """Base trainer for updating cell parameters.

    The :class:`~celltrain.neural.Layer` owns the :class:`~celltrain.neural.Cell` objects; the
    trainer owns its monitors (in a :class:`~celltrain.observe.MonitorPool`) and each cell's
    auxiliary state. So ``trainer.to(...)`` moves monitors and auxiliary state but not cells,
    and ``layer.to(...)`` moves cells but not monitors. Cells are not submodules of the trainer.

    Monitors are pooled per trainer: two cells of this trainer that ask for equal monitors of the
    same layer attribute share one; monitors of different trainers never alias.

    Args:
        **kwargs: passed to ``nn.Module.__init__`` (cooperative multiple inheritance).

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> from celltrain.observe import Latest, Monitor
        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(3, 2))})
        >>> trainer = CellTrainer()
        >>> cell, state = trainer.add_cell("in", layer.cell("in"))
        >>> monitor = trainer.add_monitor("in", "spikes", "neuron.spike", Monitor.partial(Latest))
        >>> trainer.get_monitor("in", "spikes") is monitor, trainer.get_monitor("x", "spikes")
        (True, None)
    """

    #: Whether ``forward()`` may be called once after a multi-step
    #: :meth:`~celltrain.neural.Layer.run` and then learns from every step of that window (its
    #: monitors hold the whole window, see ``Monitor.recent``). Rules that must see each step
    #: on its own (e.g. a reward or eligibility per step) leave it False and are called after
    #: every ``layer(...)`` step; a runner such as ``SpikingModule`` uses ``run`` only when every
    #: rule it calls learns windows.
    learns_windows: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cells: dict[str, Cell] = {}
        self.states = nn.ModuleDict()
        self.pool = MonitorPool()

    # cells -------------------------------------------------------------------------------
    def add_cell(
        self,
        name: str,
        cell: Cell,
        state: nn.Module | None = None,
        params: Sequence[str] | None = None,
    ) -> tuple[Cell, nn.Module | None]:
        """Adds a cell and any auxiliary state.

        Args:
            name: name of the cell to add (no ``.``).
            cell: cell to add.
            state: any extra state to add (becomes a submodule of the trainer).
            params: trainable parameters the cell updater must have.

        Raises:
            ValueError: a cell with this name already exists, or the name is not a valid one.
            TypeError: ``cell`` is not a Cell, or ``state`` not an ``nn.Module``.
            RuntimeError: the cell's connection has no updater, or the updater lacks one of
                ``params``.

        Returns:
            added cell and auxiliary state.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"name must be a non-empty string without '.', got {name!r}")
        if name in self._cells:
            raise ValueError(f"name {name!r} is already the name of an added cell")
        if not isinstance(cell, Cell):
            raise TypeError(f"cell must be a Cell, got {type(cell).__name__}")
        if state is not None and not isinstance(state, nn.Module):
            raise TypeError(f"state must be an nn.Module or None, got {type(state).__name__}")
        updater = getattr(cell.connection, "updater", None)
        if not isinstance(updater, Updater):
            raise RuntimeError(
                f"cell {cell.name!r} is not updatable: its connection has no Updater"
            )
        missing = [p for p in (params or ()) if p not in updater.names]
        if missing:
            raise RuntimeError(
                f"the updater of cell {cell.name!r} has no trainable parameter(s) {missing} "
                f"(it has {updater.names})"
            )
        self._cells[name] = cell
        cell.neuron.learning = self.training
        self.pool.add_observed(name, cell)
        if state is not None:
            self.states[name] = state
        return self.get_cell(name)

    def get_cell(self, name: str) -> tuple[Cell, nn.Module | None]:
        """Gets an added cell and any added state.

        Raises:
            AttributeError: no cell of that name was added.
        """
        if name not in self._cells:
            raise AttributeError(f"cell {name!r} is not the name of an added cell")
        return self._cells[name], (self.states[name] if name in self.states else None)

    def del_cell(self, name: str) -> None:
        """Deletes an added cell with its auxiliary state and monitors.

        The cell itself still belongs to its layer and can be added again.

        Raises:
            AttributeError: no cell of that name was added.
        """
        if name not in self._cells:
            raise AttributeError(f"cell {name!r} is not the name of an added cell")
        self.pool.del_observed(name)
        if name in self.states:
            del self.states[name]
        neuron = self._cells.pop(name).neuron
        if all(other.neuron is not neuron for other in self._cells.values()):
            neuron.learning = False

    @property
    def cells(self) -> Iterator[tuple[Cell, nn.Module | None]]:
        """Added cells and their auxiliary states."""
        return (self.get_cell(name) for name in list(self._cells))

    @property
    def named_cells(self) -> Iterator[tuple[str, tuple[Cell, nn.Module | None]]]:
        """Added cells with their auxiliary states, and their names."""
        return ((name, self.get_cell(name)) for name in list(self._cells))

    # monitors ----------------------------------------------------------------------------
    def add_monitor(
        self,
        cell: str,
        name: str,
        attr: str,
        monitor: MonitorConstructor,
        unique: bool = False,
        /,
        **tags: Any,
    ) -> Monitor:
        """Adds a monitor to a cell, or returns an equal pooled one.

        Args:
            cell: name of the cell to which the monitor will be added.
            name: name of the monitor (unique to the cell).
            attr: dot-separated attribute to monitor, relative to the cell
                (``"neuron.spike"``, ``"connection.synapse.spike"``).
            monitor: partial constructor of the monitor, e.g. ``Monitor.partial(Trace, tau=20)``.
            unique: never alias from the pool; also replaces an existing monitor of that name.
            **tags: further keys that must be equal for two requests to share a monitor.

        Raises:
            AttributeError: the cell does not exist (or ``attr`` does not resolve).

        Returns:
            the added or retrieved monitor.
        """
        if cell not in self._cells:
            raise AttributeError(f"cell {cell!r} is not the name of an added cell")
        return self.pool.add_monitor(cell, name, attr, monitor, unique, **tags)

    def get_monitor(self, cell: str, name: str) -> Monitor | None:
        """Gets an added monitor.

        Args:
            cell: name of the cell to which the monitor was added.
            name: name of the monitor.

        Returns:
            the monitor, or ``None`` when no cell ``cell`` was added or it has no monitor
            ``name`` (as the seed API documents: no error).
        """
        if cell not in self._cells:
            return None
        return self.pool.get_monitor(cell, name)

    def del_monitor(self, cell: str, name: str) -> None:
        """Deletes an added monitor (the monitor itself survives while another cell uses it).

        Raises:
            AttributeError: the cell does not exist, or has no monitor of that name.
        """
        if cell not in self._cells:
            raise AttributeError(f"cell {cell!r} is not the name of an added cell")
        self.pool.del_monitor(cell, name)

    @property
    def monitors(self) -> Iterator[Monitor]:
        """Added monitors, each pooled monitor once."""
        return self.pool.monitors

    @property
    def named_monitors(self) -> Iterator[tuple[tuple[str, str], Monitor]]:
        """``((cell name, monitor name), monitor)`` for every added monitor reference."""
        return self.pool.named_monitors

    def named_monitors_of(self, cell: str) -> Iterator[tuple[str, Monitor]]:
        """``(monitor name, monitor)`` for the monitors of one cell.

        Raises:
            AttributeError: the cell does not exist.
        """
        if cell not in self._cells:
            raise AttributeError(f"cell {cell!r} is not the name of an added cell")
        return self.pool.named_monitors_of(cell)

    # modes and updates ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> CellTrainer:
        """Sets the training mode; registers (True) or deregisters (False) the monitors.

        Does not change the cells' own training mode (cells are not submodules) and does not
        clear monitors (call :meth:`clear` for that). It switches the learning of the cells'
        target neurons (``neuron.learning``, e.g. ALIF's threshold) with the rule: a neuron
        learns while the trainer that last set its mode is in training mode.

        Returns:
            self.
        """
        if not isinstance(mode, bool):
            raise ValueError(f"mode must be a bool, got {mode!r}")
        super().train(mode)  # reaches the pool, which (de)registers its monitors
        for cell in self._cells.values():
            cell.neuron.learning = mode
        return self

    def clear(self, **kwargs: Any) -> None:
        """Clears all monitors of the trainer (pending updates stay).

        Subclasses with additional state clear it too. Keyword arguments are passed to each
        monitor's ``clear``.
        """
        for monitor in self.monitors:
            monitor.clear(**kwargs)

    def updaters(self) -> list[Updater]:
        """Every distinct updater of the added cells: connections' and target neurons'."""
        found: dict[int, Updater] = {}
        for cell in self._cells.values():
            for updater in cell.updaters:
                found.setdefault(id(updater), updater)
        return list(found.values())

    def update(self, **kwargs: Any) -> None:
        """Applies all cumulative updates of the cells' updaters, each updater once.

        This applies every pending term, also those added by other trainers, and runs the
        updaters' constraints (e.g. clamping, normalisation). Applying clears, so a second call
        changes nothing.

        Raises:
            TypeError: keyword arguments were given (no updater takes any).
        """
        if kwargs:
            raise TypeError(f"update() takes no keyword arguments here, got {sorted(kwargs)}")
        for updater in self.updaters():
            updater.step()

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Processes a training step.

        Raises:
            NotImplementedError: subclasses implement their rule here.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")


class CellState(nn.Module):
    """Auxiliary state of one cell in an :class:`IndependentCellTrainer`: its hyperparameters
    as attributes (and any buffers the rule adds).

    Example::

        >>> state = CellState(lr=0.1, tau=20.0)
        >>> state.lr, state.hyperparameters
        (0.1, {'lr': 0.1, 'tau': 20.0})
    """

    def __init__(self, **hyperparameters: Any) -> None:
        super().__init__()
        for key, value in hyperparameters.items():
            setattr(self, key, value)
        self.hyperparameters = dict(hyperparameters)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())


class IndependentCellTrainer(CellTrainer):
    """A :class:`CellTrainer` whose rule treats each cell on its own.

    The trainer's keyword arguments are the default hyperparameters; ``register_cell`` adds a
    cell with per-cell overrides (stored as the cell's auxiliary :class:`CellState`) and the
    monitors the rule needs. Iterating over the trainer yields ``(cell, state, monitors)``.

    A rule is written as three methods, in the manner of torchmetrics' ``update``/``compute``:
    :meth:`check` (validate hyperparameters), :meth:`add_monitors` (the monitors a cell needs)
    and :meth:`learn_cell` (one cell's learning step). :meth:`forward` is the template that
    calls them: it does nothing outside training mode and calls :meth:`learn_cell` for every
    cell, in the order they were added, passing on its own arguments (e.g. a reward). Set
    ``required_params`` (parameters the cell's updater must have) and ``learns_windows``.

    Example::

        >>> from celltrain.neural import LIF, Layer, Linear
        >>> from celltrain.observe import Count, Monitor
        >>> class Potentiate(IndependentCellTrainer):  # every post spike strengthens all inputs
        ...     def add_monitors(self, name, state):
        ...         self.add_monitor(name, "spikes", "neuron.spike", Monitor.partial(Count))
        ...     def learn_cell(self, name, cell, state, monitors):
        ...         count = monitors["spikes"].peek().sum(0, keepdim=True).t()
        ...         cell.updater.weight.add(pos=state.lr * count.expand_as(cell.connection.weight))
        >>> w = torch.full((2, 3), 500.0)
        >>> layer = Layer({"n": LIF(2)}, {"in": ("input", "n", Linear(3, 2, weight=w))})
        >>> rule = Potentiate(lr=0.1)
        >>> _ = rule.register_cell("in", layer.cell("in"))
        >>> _ = layer(input=torch.ones(1, 3, dtype=torch.bool))
        >>> rule()
        >>> bool(layer.connections["in"].updater.pending)
        True

    Args:
        **defaults: default hyperparameters of every cell.
    """

    required_params: tuple[str, ...] = ("weight",)

    def __init__(self, **defaults: Any) -> None:
        super().__init__()
        self.defaults = self.check(dict(defaults))
        self._monitors_of: dict[str, dict[str, Monitor]] = {}  # cell -> its monitors, cached

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Validate (and normalise) a full set of hyperparameters; raise on bad values."""
        return hyperparameters

    def add_monitors(self, name: str, state: CellState) -> None:
        """Add the monitors the rule needs for cell ``name``."""

    def register_cell(self, name: str, cell: Cell, **overrides: Any) -> tuple[Cell, CellState]:
        """Adds a cell with per-cell hyperparameters overriding the trainer's defaults.

        Raises:
            TypeError: an override names no hyperparameter of this rule.
            ValueError: a duplicate name or a bad hyperparameter value.

        Returns:
            the cell and its state.
        """
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no hyperparameter(s) {unknown} "
                f"(it has {sorted(self.defaults)})"
            )
        state = CellState(**self.check({**self.defaults, **overrides}))
        self.add_cell(name, cell, state, self.required_params)
        try:
            self.add_monitors(name, state)
        except Exception:
            self.del_cell(name)
            raise
        return cell, state

    def __iter__(self) -> Iterator[tuple[Cell, CellState, dict[str, Monitor]]]:
        """Yield ``(cell, state, monitors by name)`` for every added cell."""
        for name, cell in list(self._cells.items()):
            yield cell, self.states[name], dict(self.monitors_of(name))

    def monitors_of(self, cell: str) -> dict[str, Monitor]:
        """The monitors of cell ``cell`` by name (kept between calls; do not modify).

        Raises:
            AttributeError: the cell does not exist.
        """
        monitors = self._monitors_of.get(cell)
        if monitors is None:
            monitors = self._monitors_of[cell] = dict(self.named_monitors_of(cell))
        return monitors

    def add_monitor(
        self,
        cell: str,
        name: str,
        attr: str,
        monitor: MonitorConstructor,
        unique: bool = False,
        /,
        **tags: Any,
    ) -> Monitor:
        self._monitors_of.pop(cell, None)
        return super().add_monitor(cell, name, attr, monitor, unique, **tags)

    add_monitor.__doc__ = CellTrainer.add_monitor.__doc__

    def del_monitor(self, cell: str, name: str) -> None:
        self._monitors_of.pop(cell, None)
        super().del_monitor(cell, name)

    del_monitor.__doc__ = CellTrainer.del_monitor.__doc__

    def del_cell(self, name: str) -> None:
        self._monitors_of.pop(name, None)
        super().del_cell(name)

    del_cell.__doc__ = CellTrainer.del_cell.__doc__

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """The rule's step: in training mode, :meth:`learn_cell` for every cell, with these
        arguments (e.g. a reward); nothing in evaluation mode."""
        if not self.training:
            return
        for name, cell in list(self._cells.items()):
            self.learn_cell(name, cell, self.states[name], self.monitors_of(name), *args, **kwargs)

    def learn_cell(
        self,
        name: str,
        cell: Cell,
        state: CellState,
        monitors: dict[str, Monitor],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Add one cell's learning terms to its updater(s), from what its monitors recorded.

        Args:
            name: the cell's name in this trainer.
            cell: the cell.
            state: its :class:`CellState` (hyperparameters and the rule's buffers).
            monitors: its monitors by name (those :meth:`add_monitors` added).
            *args, **kwargs: what :meth:`forward` was called with (e.g. a reward).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement learn_cell()")
