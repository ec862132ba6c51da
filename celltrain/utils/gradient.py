"""Running without autograd, cheaply.

Nothing in celltrain builds an autograd graph. Entering ``torch.no_grad()`` has a cost of its
own (benchmarks/README.md), and a time step calls dozens of components, so components use
:func:`gradient_free`, which enters it only when gradients are enabled: the outermost call
(``Layer.forward``, a trainer, an encoder) switches autograd off once and the calls inside skip
the context.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def gradient_free(function: F) -> F:
    """Decorate ``function`` to run under ``torch.no_grad()`` unless autograd is already off."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):  # noqa: ANN202
        if torch.is_grad_enabled():
            with torch.no_grad():
                return function(*args, **kwargs)
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
