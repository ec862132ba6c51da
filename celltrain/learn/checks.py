"""Hyperparameter checks shared by the learning rules."""

from __future__ import annotations

import math
from typing import Any

from celltrain.utils.checks import positive, reduction_of

TRACE_MODES = ("cumulative", "nearest")


def check_common(hp: dict[str, Any], taus: tuple[str, ...]) -> dict[str, Any]:
    """Validate the time constants ``taus`` (ms, > 0), learning rates (names starting with
    ``lr``; finite), ``trace_mode`` and ``batch_reduction`` found in ``hp``; return ``hp``."""
    for key in taus:
        hp[key] = positive(key, hp[key])
    for key, value in hp.items():
        if key.startswith("lr"):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
            hp[key] = float(value)
    if "trace_mode" in hp and hp["trace_mode"] not in TRACE_MODES:
        raise ValueError(f"trace_mode must be one of {TRACE_MODES}, got {hp['trace_mode']!r}")
    if "batch_reduction" in hp:
        reduction_of("batch_reduction", hp["batch_reduction"])
    return hp
