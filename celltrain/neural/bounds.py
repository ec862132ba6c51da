"""Parameter bounds: how pending potentiation ``pos`` and depression ``neg`` (both >= 0, in the
parameter's units) become the change applied to a parameter ``w``.

Each bound is a callable ``bound(w, pos, neg) -> delta`` of tensors of the parameter's shape.
"""

from __future__ import annotations

import torch

from celltrain.utils.checks import finite, positive


class Bound:
    """Base class of bounds between ``minimum`` and ``maximum`` (parameter units).

    Example::

        >>> bound = HardBound(0.0, 1.0)  # a Bound: bound(w, pos, neg) -> delta
        >>> bound(torch.tensor([0.9]), torch.tensor([0.5]), torch.tensor([0.0]))
        tensor([0.1000])
    """

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = finite("minimum", minimum)
        self.maximum = finite("maximum", maximum)
        if self.maximum <= self.minimum:
            raise ValueError(f"maximum must be above minimum={minimum}, got {maximum}")

    def __call__(self, w: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def confine(self, param: torch.Tensor, inside: torch.Tensor) -> None:
        """Called by the Updater right after ``param += delta``, in place.

        ``w + (maximum - w)`` need not round to ``maximum`` in floating point, so a bound that
        promises to keep weights inside ``[minimum, maximum]`` clamps here the entries that
        were ``inside`` (bool, before the update). The default does nothing.
        """

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Unbounded:
    """No bound: ``delta = pos - neg``.

    Example::

        >>> Unbounded()(torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([0.1]))
        tensor([0.1000])
    """

    def __call__(self, w: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return pos - neg

    def __repr__(self) -> str:
        return "Unbounded()"


class HardBound(Bound):
    """Hard bound: ``w + pos - neg`` clamped to ``[minimum, maximum]``.

    Clamping is what this bound is for, so it is the documented result, not a silent fix.

    Example::

        >>> HardBound(0.0, 1.0)(torch.tensor([0.9, 0.1]), torch.tensor([0.5, 0.0]),
        ...                     torch.tensor([0.0, 0.5]))
        tensor([ 0.1000, -0.1000])
    """

    def __call__(self, w: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return (w + pos - neg).clamp(self.minimum, self.maximum) - w

    def confine(self, param: torch.Tensor, inside: torch.Tensor) -> None:
        param.clamp_(self.minimum, self.maximum)


class SoftBound(Bound):
    """Soft (multiplicative) bound, exact for any update size.

    ``delta = (max - w) * (1 - exp(-pos)) - (w - min) * (1 - exp(-neg))``. For small updates this
    is the classic multiplicative rule ``(max - w) * pos - (w - min) * neg``; since both factors
    ``1 - exp(-x)`` lie in ``[0, 1)``, a weight inside ``[min, max]`` stays inside whatever the
    size of ``pos`` and ``neg``.

    Example::

        >>> SoftBound(0.0, 1.0)(torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([0.0]))
        tensor([0.0906])
    """

    def __call__(self, w: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return (self.maximum - w) * -torch.expm1(-pos) - (w - self.minimum) * -torch.expm1(-neg)

    def confine(self, param: torch.Tensor, inside: torch.Tensor) -> None:
        param.copy_(torch.where(inside, param.clamp(self.minimum, self.maximum), param))


class PowerBound(Bound):
    """Power-law bound (Gütig et al. 2003): ``delta = (max - w)^mu * pos - (w - min)^mu * neg``.

    ``mu = 1`` is the classic multiplicative rule, ``mu -> 0`` approaches the additive one. Like
    the paper's rule it keeps weights inside the bounds only for updates small enough that one
    step does not overshoot.

    Args:
        minimum, maximum: the bounds.
        mu: exponent (> 0).

    Example::

        >>> PowerBound(0.0, 1.0, mu=2.0)(torch.tensor([0.5]), torch.tensor([0.2]),
        ...                              torch.tensor([0.0]))
        tensor([0.0500])
    """

    def __init__(self, minimum: float, maximum: float, mu: float = 1.0) -> None:
        super().__init__(minimum, maximum)
        self.mu = positive("mu", mu)

    def __call__(self, w: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        up = (self.maximum - w).clamp_min(0.0).pow(self.mu)
        down = (w - self.minimum).clamp_min(0.0).pow(self.mu)
        return up * pos - down * neg
