"""Constraints: run on a parameter right after its Updater applied pending changes.

Each constraint is a callable ``constraint(param)`` that modifies ``param`` (an
``nn.Parameter``) in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from celltrain.utils.checks import finite, positive


class Clamp:
    """Clamp a parameter to ``[minimum, maximum]`` after each update (parameter units).

    Example::

        >>> weight = torch.tensor([-0.5, 0.5, 1.5])
        >>> Clamp(0.0, 1.0)(weight); weight
        tensor([0.0000, 0.5000, 1.0000])
    """

    def __init__(self, minimum: float | None = None, maximum: float | None = None) -> None:
        if minimum is None and maximum is None:
            raise ValueError("Clamp needs minimum or maximum, got neither")
        self.minimum = None if minimum is None else finite("minimum", minimum)
        self.maximum = None if maximum is None else finite("maximum", maximum)
        if self.minimum is not None and self.maximum is not None and self.maximum < self.minimum:
            raise ValueError(f"maximum must be >= minimum={minimum}, got {maximum}")

    def __call__(self, param: torch.Tensor) -> None:
        param.clamp_(self.minimum, self.maximum)

    def __repr__(self) -> str:
        return f"Clamp(minimum={self.minimum}, maximum={self.maximum})"


class Normalize:
    """Rescale each target neuron's weights to a fixed sum (Diehl & Cook 2015).

    The weight's dimension ``target_dim`` indexes the target neurons (0 for ``Linear`` and
    ``Conv2d`` weights); the sum runs over all other dimensions. A target whose weights sum to
    zero cannot be rescaled and is left unchanged.

    Args:
        total: the sum each target neuron's weights are scaled to.
        target_dim: the weight dimension of the target neurons.

    Example::

        >>> weight = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
        >>> Normalize(1.0)(weight); weight  # each row sums to 1
        tensor([[0.2500, 0.7500],
                [0.5000, 0.5000]])
    """

    def __init__(self, total: float, target_dim: int = 0) -> None:
        self.total = positive("total", total)
        self.target_dim = target_dim

    def __call__(self, param: torch.Tensor) -> None:
        if param.dim() < 2:
            raise ValueError(
                f"Normalize needs a weight with a target dimension and input dimensions, "
                f"got shape {tuple(param.shape)}"
            )
        dims: Sequence[int] = [d for d in range(param.dim()) if d != self.target_dim % param.dim()]
        sums = param.sum(dim=dims, keepdim=True)
        scale = torch.where(sums == 0, torch.ones_like(sums), self.total / sums)
        param.mul_(scale)

    def __repr__(self) -> str:
        return f"Normalize(total={self.total}, target_dim={self.target_dim})"
