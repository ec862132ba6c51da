"""Argument checks shared by the simulation core.

Every check raises at the call that received the bad value, with a message that names the
argument, the expected value and the given value. Nothing is clipped or broadcast silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _real(name: str, value: float) -> float:
    """``value`` as a float, or ``TypeError`` naming ``name`` when it is not a real number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None


def positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ``ValueError``.

    Args:
        name: argument name used in the error message.
        value: the number to check (e.g. a time constant in ms).
    """
    number = _real(name, value)
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def non_negative(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise ``ValueError``."""
    number = _real(name, value)
    if not math.isfinite(number) or number < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def finite(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite, else raise ``ValueError``."""
    number = _real(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def shape_of(name: str, shape: int | Sequence[int]) -> tuple[int, ...]:
    """Normalise a population shape (an int or a sequence of ints, each >= 1) to a tuple."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ValueError(
            f"{name} must be a positive int or a non-empty sequence of them, got {shape!r}"
        )
    return dims


def batched(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> int:
    """Check that ``tensor`` has shape ``(B, *shape)`` and return ``B``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tuple(tensor.shape[1:]) != shape or tensor.dim() != len(shape) + 1:
        raise ValueError(
            f"{name} must have shape (batch, {', '.join(map(str, shape))}), "
            f"got {tuple(tensor.shape)}"
        )
    return tensor.shape[0]


def reduction_of(name: str, value: str) -> str:
    """Check a batch reduction name: ``"mean"`` or ``"sum"``."""
    if value not in ("mean", "sum"):
        raise ValueError(f"{name} must be 'mean' or 'sum', got {value!r}")
    return value


def name_of(kind: str, name: str) -> str:
    """Check a component name: a non-empty string without ``.`` (names become module paths)."""
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{kind} name must be a non-empty string without '.', got {name!r}")
    return name
