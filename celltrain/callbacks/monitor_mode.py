"""``MonitorMode``: trainers' monitors record during training batches only."""

from __future__ import annotations

from typing import Any

import lightning as L

from celltrain.learn import CellTrainer


def cell_trainers(pl_module: L.LightningModule) -> list[CellTrainer]:
    """Every :class:`~celltrain.learn.CellTrainer` inside ``pl_module`` (each once)."""
    return [m for m in pl_module.modules() if isinstance(m, CellTrainer)]


class MonitorMode(L.Callback):
    """Register the trainers' monitors for training batches; deregister them otherwise.

    Lightning (since 2.2) restores training mode after validation by setting ``.training``
    directly, without calling ``.train()``, so a trainer deregistered by ``.eval()`` would never
    record again. This callback therefore checks at the start of every training batch that each
    trainer is in training mode with its monitors registered (and calls ``trainer.train(True)``
    otherwise), and calls ``trainer.train(False)`` when the sanity check, validation, test or
    predict starts, so monitors never record there, however many validation rounds interleave
    with training.

    Example::

        >>> import lightning as L
        >>> trainer = L.Trainer(callbacks=[MonitorMode()], logger=False, enable_progress_bar=False)
        >>> sum(isinstance(c, MonitorMode) for c in trainer.callbacks)
        1
    """

    def __init__(self) -> None:
        self._trainers: list[CellTrainer] = []

    def _set(self, pl_module: L.LightningModule, mode: bool) -> None:
        # the module's trainers are looked up again at every stage boundary (rare) and kept for
        # the per-batch calls, where walking every submodule would cost more than the rest
        self._trainers = cell_trainers(pl_module)
        for trainer in self._trainers:
            trainer.train(mode)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, True)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        for cell_trainer in self._trainers:
            # Lightning may have set .training back without .train(): check the monitors and
            # the neurons' learning too
            if (
                not cell_trainer.training
                or not all(m.registered for m in cell_trainer.monitors)
                or not all(cell.neuron.learning for cell, _ in cell_trainer.cells)
            ):
                cell_trainer.train(True)

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, False)

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning restores the modes it found when the check began (set False above); put
        # the trainers back in training mode so training does not start with them in eval
        self._set(pl_module, True)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, False)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, False)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, False)
