"""``ApplyUpdates``: apply the trainers' pending updates at the end of training batches."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from celltrain.callbacks.monitor_mode import cell_trainers
from celltrain.learn import CellTrainer
from celltrain.neural import Updater


def distinct_updaters(pl_module: L.LightningModule) -> list[Updater]:
    """Every distinct updater of every trainer's cells, in a fixed order."""
    found: dict[int, Updater] = {}
    for trainer in cell_trainers(pl_module):
        for updater in trainer.updaters():
            found.setdefault(id(updater), updater)
    return list(found.values())


class ApplyUpdates(L.Callback):
    """Call ``update()`` on every trainer after every ``every_n_batches`` training batches.

    With more than one process it first combines every pending update across ranks the way the
    rule combined the samples of one batch: terms reduced by ``"sum"`` are summed over ranks;
    terms reduced by ``"mean"`` are averaged, weighted by the samples each rank saw since the
    last apply. With equal batch sizes the learned state is then identical on all ranks and
    equals what one process learns from the union of the ranks' batches. A parameter that
    received no term on some rank is still combined (its sums are zero there).

    Args:
        every_n_batches: apply after this many training batches (>= 1).

    Example::

        >>> import lightning as L
        >>> callback = ApplyUpdates(every_n_batches=2)  # apply after every second batch
        >>> trainer = L.Trainer(callbacks=[callback], logger=False, enable_progress_bar=False,
        ...                     enable_model_summary=False, enable_checkpointing=False)
        >>> any(c is callback for c in trainer.callbacks)
        True
    """

    def __init__(self, every_n_batches: int = 1) -> None:
        if not isinstance(every_n_batches, int) or every_n_batches < 1:
            raise ValueError(f"every_n_batches must be an int >= 1, got {every_n_batches!r}")
        self.every_n_batches = every_n_batches
        self.batches_pending = 0
        self.samples_pending = 0
        self._trainers: list[CellTrainer] | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # found once per epoch and kept for the per-batch calls (walking every submodule at
        # each batch is a measurable part of a one-sample batch, benchmarks/README.md)
        self._trainers = cell_trainers(pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.batches_pending += 1
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.samples_pending += int(first.shape[0])
        if self.batches_pending < self.every_n_batches:
            return
        if trainer.world_size > 1:
            self.combine(trainer, pl_module)
        if self._trainers is None:
            self._trainers = cell_trainers(pl_module)
        for cell_trainer in self._trainers:
            cell_trainer.update()
        self.batches_pending = 0
        self.samples_pending = 0

    def combine(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """All-reduce every pending sum across ranks (see the class docstring)."""
        strategy = trainer.strategy
        samples = torch.tensor(
            float(self.samples_pending), dtype=torch.float64, device=pl_module.device
        )
        total = strategy.reduce(samples.clone(), reduce_op="sum")
        for updater in distinct_updaters(pl_module):
            for update in updater.children():
                reduction = _agreed_reduction(strategy, update.batch_reduction)
                for name in ("pos", "neg"):
                    value = getattr(update, name)
                    if reduction == "mean":
                        weighted = value.to(torch.float64) * samples
                        combined = strategy.reduce(weighted, reduce_op="sum") / total
                    else:
                        combined = strategy.reduce(value.clone(), reduce_op="sum")
                    setattr(update, name, combined.to(value.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {
            "every_n_batches": self.every_n_batches,
            "batches_pending": self.batches_pending,
            "samples_pending": self.samples_pending,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_pending = int(state_dict["batches_pending"])
        self.samples_pending = int(state_dict["samples_pending"])


def _agreed_reduction(strategy: Any, local: str | None) -> str:
    """The reduction all ranks agree on (a rank whose parameter saw no term yet defers).

    Raises:
        RuntimeError: terms reduced by mean and by sum are pending for one parameter (on one
            rank or across ranks): their sums cannot be combined exactly across processes.
    """
    code = {None: 0, "mean": 1, "sum": 2, "mixed": 3}[local]
    codes = strategy.all_gather(torch.tensor([code]))
    found = {int(c) for c in codes.flatten().tolist()} - {0}
    if len(found) > 1 or 3 in found:
        raise RuntimeError(
            "one parameter has pending terms reduced by both 'mean' and 'sum' over the batch; "
            "across processes they cannot be combined exactly: give the rules that train it "
            "the same batch_reduction"
        )
    return "sum" if found == {2} else "mean"
