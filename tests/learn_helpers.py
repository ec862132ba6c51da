"""Shared helpers of the learning-rule tests."""

from __future__ import annotations

import torch

from celltrain.neural import LIF, Connection, Direct, Layer


def forced_layer(syn: Connection, post_shape: int | tuple[int, ...], dt: float = 1.0) -> Layer:
    """``pre`` -> post through the learned ``syn`` and ``drive`` -> post through a one-to-one
    connection so strong that a drive spike makes the post neuron spike in that very step."""
    shape = (post_shape,) if isinstance(post_shape, int) else tuple(post_shape)
    drive = Direct(post_shape, weight=torch.full(shape, 1000.0))
    return Layer(
        {"post": LIF(post_shape, refractory_period=0.0)},
        {"syn": ("pre", "post", syn), "drive": ("drive", "post", drive)},
        inputs=("pre", "drive"),
        dt=dt,
    )
