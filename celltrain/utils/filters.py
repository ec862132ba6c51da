"""First-order exponential filters over a window of time steps, without a Python loop per step.

Traces, exponential synaptic currents and threshold adaptation all follow
``y[t] = decay * y[t-1] + x[t]``. Run step by step this costs two tensor operations per step;
over a window of ``T`` steps held in one tensor, :func:`exponential_filter` computes all ``T``
values with a handful of operations, which is what makes multi-step simulation
(:meth:`~celltrain.neural.Layer.run`) and window-wise learning rules cheap.
"""

from __future__ import annotations

import math

import torch

# exp(30) ~ 1e13: scaled terms stay far from float32 overflow (3e38) for any realistic input
_MAX_EXPONENT = 30.0

#: Per-step decay fractions below this are too slow for float32 state: a step's decrease is then
#: a few units in the last place of the value, so rounding it at every step biases the decay rate
#: (``exp(-1/1e7)`` in float32 decays as if tau were 8.4e6). Such state is held in float64.
SLOW_FRACTION = 2.0**-14

_LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


def decay_fraction(dt: float, tau: float) -> float:
    """The fraction ``1 - exp(-dt / tau)`` that a first-order decay removes per step.

    Computed as ``-expm1(-dt / tau)``, accurate to float64 rounding even when it is tiny (the
    factor ``exp(-dt / tau)`` itself rounds to the nearest float and loses its distance to 1).

    Args:
        dt: step length (ms, > 0).
        tau: time constant (ms, > 0).
    """
    return -math.expm1(-dt / tau)


def decayed(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """``x`` after one step of decay, ``x - fraction * x`` (a new tensor of ``x``'s dtype).

    Subtracting the decrease, rather than multiplying by the factor ``1 - fraction``, keeps the
    decay rate accurate in any dtype: ``fraction`` rounds with a small relative error, whereas
    the factor rounds with an error of its own size's last place, which for a slow decay is a
    large part of ``fraction`` (see :data:`SLOW_FRACTION`).

    Args:
        x: the decaying state, any shape, floating point.
        fraction: per-step decay fraction in ``[0, 1]``, from :func:`decay_fraction`.
    """
    return torch.add(x, x, alpha=-fraction)


def state_dtype(dtype: torch.dtype, fraction: float) -> torch.dtype:
    """The dtype to hold state of ``dtype`` in when it decays by ``fraction`` per step.

    ``torch.float64`` for a low-precision float dtype and a decay slower than
    :data:`SLOW_FRACTION` (e.g. the Diehl & Cook threshold, tau 1e7 ms at dt 1 ms), where even
    :func:`decayed` would be rounded at every step to a few units in the last place;
    ``dtype`` itself otherwise.

    Args:
        dtype: the network's floating point dtype.
        fraction: per-step decay fraction, from :func:`decay_fraction` (or an EMA weight).
    """
    return torch.float64 if dtype in _LOW_PRECISION and fraction < SLOW_FRACTION else dtype


def exponential_filter(
    x: torch.Tensor,
    decay: float,
    initial: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """``y[t] = decay * y[t-1] + x[t]`` for every step ``t`` of a window, ``y[-1] = initial``.

    Within chunks of ``L`` steps (``decay**-L <= e^30``) the recurrence is solved in closed
    form, ``y[t] = decay**t * (initial + cumsum_s(decay**-s * x[s]))``, which is exact up to
    float rounding of the same order as running the recurrence step by step (the scaled terms
    grow with ``t`` and are scaled back, so the error stays relative to ``max |x|``).

    Args:
        x: input of each step, ``(T, *S)``, floating point (time first).
        decay: per-step factor in ``[0, 1]`` (e.g. ``exp(-dt / tau)``); below ``e^-30`` the
            recurrence is run step by step (the closed form's scaling would overflow).
        initial: value before the first step, ``(*S)`` (default zeros).
        reverse: run the filter backwards in time (``y[t] = decay * y[t+1] + x[t]``); this is
            the anti-causal filter ``sum_{s >= t} decay**(s-t) x[s]`` used to pair each event
            with the later events of another train. ``initial`` then is the value after the
            last step.

    Returns:
        ``y``, ``(T, *S)``, in ``x``'s dtype.

    Raises:
        ValueError: ``decay`` is not in ``[0, 1]``, ``x`` has no time dimension or is not
            floating point, or ``initial`` does not have shape ``x.shape[1:]``.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating point tensor (T, *S), got dtype {x.dtype} with shape "
            f"{tuple(x.shape)}"
        )
    if initial is not None and initial.shape != x.shape[1:]:
        raise ValueError(
            f"initial must have shape {tuple(x.shape[1:])} (x without time), "
            f"got {tuple(initial.shape)}"
        )
    if reverse:
        return exponential_filter(x.flip(0), decay, initial).flip(0)
    steps = x.shape[0]
    if steps == 0:
        return x.clone()
    out = torch.empty_like(x)
    rate = -math.log(decay) if decay > 0.0 else math.inf
    if rate > _MAX_EXPONENT:  # decays within a step: the recurrence itself, one op per step
        previous = initial
        for t in range(steps):
            if previous is None:
                out[t] = x[t]
            else:
                torch.add(x[t], previous, alpha=decay, out=out[t])
            previous = out[t]
        return out
    chunk = steps if rate == 0.0 else max(1, min(steps, int(_MAX_EXPONENT / rate)))
    view = (-1,) + (1,) * (x.dim() - 1)
    carry = initial
    for start in range(0, steps, chunk):
        part = x[start : start + chunk]
        n = part.shape[0]
        k = torch.arange(1, n + 1, dtype=torch.float64, device=x.device) * rate
        grow = torch.exp(k).to(x.dtype).view(view)
        shrink = torch.exp(-k).to(x.dtype).view(view)
        y = torch.cumsum(part * grow, 0).mul_(shrink)
        if carry is not None:
            y.add_(shrink * carry)
        out[start : start + n] = y
        carry = y[-1]
    return out


def decay_powers(
    steps: int,
    decay: float,
    dtype: torch.dtype,
    device: torch.device | None = None,
    first: int = 1,
) -> torch.Tensor:
    """``decay**first ... decay**(first + steps - 1)`` as a ``(steps,)`` tensor (with
    ``first=1``: how a value carried into a window has decayed at each of its steps)."""
    k = torch.arange(first, first + steps, dtype=torch.float64, device=device)
    base = torch.tensor(decay, dtype=torch.float64, device=device)
    return torch.pow(base, k).to(dtype)  # 0 ** 0 = 1: a decay of 0 keeps only the present
