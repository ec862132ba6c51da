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
    record again. This callback therefore calls ``trainer.train(True)`` at the start of every
    training batch (registering is idempotent) and ``trainer.train(False)`` when the sanity
    check, validation, test or predict starts, so monitors never record there, however many
    validation rounds interleave with training.
    """

    @staticmethod
    def _set(pl_module: L.LightningModule, mode: bool) -> None:
        for trainer in cell_trainers(pl_module):
            trainer.train(mode)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._set(pl_module, True)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._set(pl_module, False)

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
