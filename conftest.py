"""Doctest namespace for the examples in celltrain's docstrings (``--doctest-modules``): they
may use ``torch`` and every public name of ``celltrain.neural``, ``celltrain.observe``,
``celltrain.learn``, ``celltrain.callbacks`` and ``celltrain.lightning`` without importing
them, as a user's ``from celltrain.<layer> import ...`` would."""

from __future__ import annotations

import importlib

import pytest
import torch

LAYERS = (
    "celltrain.neural",
    "celltrain.neural.functional",
    "celltrain.observe",
    "celltrain.learn",
    "celltrain.callbacks",
    "celltrain.lightning",
)


@pytest.fixture(autouse=True)
def _celltrain_doctest_namespace(doctest_namespace: dict) -> None:
    doctest_namespace["torch"] = torch
    for name in LAYERS:
        module = importlib.import_module(name)
        doctest_namespace.update({n: getattr(module, n) for n in module.__all__})
    torch.manual_seed(0)
