"""Pending, bounded updates of a module's trainable parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from celltrain.neural.bounds import Bound, Unbounded
from celltrain.utils.checks import reduction_of

Bounding = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: a constraint runs on a parameter in place right after each update, e.g. ``Normalize``
Constraint = Callable[[torch.Tensor], None]


class ParameterUpdate(nn.Module):
    """Running sums of potentiation ``pos`` and depression ``neg`` for one parameter.

    Learning rules call :meth:`add` as often as they like; memory stays that of two tensors of
    the parameter's shape. ``pos`` and ``neg`` are buffers, so they are saved in checkpoints and
    can be all-reduced across processes before :meth:`Updater.step`.

    Args:
        shape: the parameter's shape.
        bound: ``bound(w, pos, neg) -> delta`` (default: unbounded, ``pos - neg``).
        constraints: callables ``constraint(param)`` run in order after each update (e.g. ``Clamp``,
            ``Normalize``).

    Example::

        >>> update = ParameterUpdate((2,))
        >>> update.add(pos=torch.tensor([1.0, 0.0])); update.add(neg=torch.tensor([0.5, 0.5]))
        >>> update.pos - update.neg
        tensor([ 0.5000, -0.5000])
    """

    def __init__(
        self,
        shape: Sequence[int],
        bound: Bounding | None = None,
        constraints: Iterable[Constraint] = (),
    ) -> None:
        super().__init__()
        self.bound = bound if bound is not None else Unbounded()
        self.constraints = list(constraints)
        self.register_buffer("pos", torch.zeros(tuple(shape)))
        self.register_buffer("neg", torch.zeros(tuple(shape)))
        #: how the pending terms were reduced over a batch: "mean" or "sum", "mixed" when terms
        #: of both kinds are pending, None when nothing was added since the last clear.
        self.batch_reduction: str | None = None

    def add(
        self,
        pos: torch.Tensor | None = None,
        neg: torch.Tensor | None = None,
        *,
        reduction: str = "mean",
    ) -> None:
        """Add potentiation ``pos`` and/or depression ``neg`` (parameter shape, >= 0 expected).

        Args:
            pos: potentiation term, the parameter's shape.
            neg: depression term, the parameter's shape.
            reduction: how the term was reduced over the samples of a batch (``"mean"`` or
                ``"sum"``). Processes combine their pending sums the same way (see
                :attr:`batch_reduction`). Mixing both in one pending period is fine in one
                process; across processes it cannot be combined exactly and is refused there.

        Raises:
            ValueError: a term's shape differs from the parameter's.
        """
        reduction_of("reduction", reduction)
        if self.batch_reduction is None:
            self.batch_reduction = reduction
        elif reduction != self.batch_reduction:
            self.batch_reduction = "mixed"
        for name, term in (("pos", pos), ("neg", neg)):
            if term is None:
                continue
            current = getattr(self, name)
            if tuple(term.shape) != tuple(current.shape):
                raise ValueError(
                    f"{name} must have the parameter's shape {tuple(current.shape)}, "
                    f"got {tuple(term.shape)}"
                )
            self._buffers[name] = current + term.to(current.dtype)  # skip __setattr__ cost

    @property
    def pending(self) -> bool:
        """Whether any non-zero term waits to be applied (synchronises with the device)."""
        return bool(self.pos.any() or self.neg.any())

    def clear(self) -> None:
        """Drop the pending sums without applying them."""
        self.pos = torch.zeros_like(self.pos)
        self.neg = torch.zeros_like(self.neg)
        self.batch_reduction = None


class Updater(nn.Module):
    """The pending changes of a module's trainable parameters.

    ``updater.<param>`` is the :class:`ParameterUpdate` of that parameter: rules add terms with
    ``updater.weight.add(pos, neg)``. :meth:`step` sets ``param += bound(param, pos, neg)`` for
    each parameter with pending terms, runs its constraints, and clears. The owning module
    (which owns the updater as a submodule) is referenced outside ``_modules``, so it is not a
    submodule of the updater; a strong reference, so that ``copy.deepcopy`` and pickling
    (``torch.save`` of a whole module, spawned processes) give a copy whose updater updates
    the copy.

    Args:
        module: the module whose parameters are updated.
        params: parameter names, or a mapping name -> ``(bound, constraints)``.

    Example::

        >>> connection = Linear(2, 1, weight=torch.zeros(1, 2))
        >>> connection.updater.weight.add(pos=torch.tensor([[0.5, 1.0]]))
        >>> _ = connection.updater.step()  # apply, bound, constrain, clear
        >>> connection.weight.data, connection.updater.pending
        (tensor([[0.5000, 1.0000]]), False)
    """

    def __init__(
        self,
        module: nn.Module,
        params: Sequence[str] | Mapping[str, tuple[Bounding | None, Iterable[Constraint]]],
    ) -> None:
        super().__init__()
        # Not ``self._module = module``: nn.Module would register the owner as a submodule (a
        # cycle). Not a weakref: it cannot be pickled and deepcopy would keep the original.
        self.__dict__["_owner"] = module
        spec = params if isinstance(params, Mapping) else {name: (None, ()) for name in params}
        for name, (bound, constraints) in spec.items():
            param = getattr(module, name, None)
            if not isinstance(param, torch.Tensor):
                raise AttributeError(
                    f"{type(module).__name__} has no tensor parameter {name!r} to update"
                )
            self.add_module(name, ParameterUpdate(param.shape, bound, constraints))

    @property
    def names(self) -> list[str]:
        """Names of the parameters this updater updates."""
        return [name for name, _ in self.named_children()]

    def __getitem__(self, name: str) -> ParameterUpdate:
        return self.get_submodule(name)

    @property
    def pending(self) -> bool:
        """Whether any parameter has terms waiting to be applied."""
        return any(u.pending for u in self.children())

    def step(self) -> Updater:
        """Apply every parameter's pending update (bound, then constraints), then clear.

        Every parameter is updated, pending or not (zero sums change nothing; constraints such
        as ``Normalize`` are idempotent), so processes whose sums were all-reduced stay
        identical. Named after ``torch.optim.Optimizer.step``; ``nn.Module.apply(fn)`` keeps its
        own meaning.

        Returns:
            self.
        """
        with torch.no_grad():
            self._apply_pending(self._owner)
        return self

    def _apply_pending(self, module: nn.Module) -> None:
        for name, update in self.named_children():
            param = getattr(module, name)
            bound = update.bound
            if isinstance(bound, Bound):
                inside = (param >= bound.minimum) & (param <= bound.maximum)
            param.add_(bound(param, update.pos, update.neg).to(param.dtype))
            if isinstance(bound, Bound):
                bound.confine(param, inside)  # undo float rounding past the bounds
            for constraint in update.constraints:
                constraint(param)
            update.clear()

    def clear(self) -> None:
        """Drop all pending updates without applying them."""
        for update in self.children():
            update.clear()
