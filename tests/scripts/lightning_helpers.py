"""Shared helpers of the Lightning and callback tests (also imported by ``ddp_fit.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from celltrain.lightning import DiehlCook

# Harmless Lightning warnings of tiny runs (few batches, no GPU, no workers); test modules set
# ``pytestmark = QUIET``.
QUIET = [
    pytest.mark.filterwarnings(f"ignore:{message}")
    for message in (
        ".*does not have many workers",
        ".*LeafSpec",
        ".*in eval mode at the start of training",
        ".*smaller than the logging interval",
        ".*no pre-optimization state was saved",  # local rules save the state after the update
        ".*all_gather is deprecated",
        ".*sync_dist=True",
        ".*but have no `val_dataloader`",
        ".*callbacks used to create the checkpoint",
    )
]


def tiny_model(**kwargs: Any) -> DiehlCook:
    """A Diehl & Cook network small and fast enough for tests, but active: with
    ``max_rate=300`` Hz its excitatory neurons fire within 20 steps, so STDP, theta and the
    readout all change every batch."""
    options = {"neurons": 10, "steps": 20, "max_rate": 300.0}
    options.update(kwargs)
    return DiehlCook(**options)


def quiet_trainer(root: str | Path, **kwargs: Any) -> L.Trainer:
    """A Trainer writing under ``root`` with logger, progress bar, summary and checkpointing
    off unless given."""
    options: dict[str, Any] = {
        "default_root_dir": str(root),
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return L.Trainer(**options)


def learned_state(module: DiehlCook) -> dict[str, torch.Tensor]:
    """Copies of every piece of learned state of a Diehl & Cook module."""
    network = module.network
    return {
        "weight": network.connections["input_exc"].weight.detach().clone(),
        "theta": network.neurons["exc"].theta.detach().clone(),
        "class_counts": module.readout.class_counts.detach().clone(),
        "class_samples": module.readout.class_samples.detach().clone(),
    }


def assert_states_close(a: dict, b: dict, atol: float, what: str = "") -> None:
    """Same keys, and every tensor equal within ``atol`` (``atol=0``: exactly)."""
    assert a.keys() == b.keys(), what
    for key in a:
        if atol == 0:
            assert torch.equal(a[key], b[key]), f"{what} {key} differs"
        else:
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=f"{what} {key}")
