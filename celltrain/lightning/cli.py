"""The ``celltrain`` command line: ``celltrain fit|validate|test|predict`` (LightningCLI).

With no arguments, ``celltrain fit`` trains :class:`~celltrain.lightning.DiehlCook` on the
scikit-learn digits (:class:`~celltrain.lightning.DigitsDataModule`) for five epochs, logging to
TensorBoard under ``lightning_logs/``. ``--config FILE`` and ``--print_config`` work as in any
LightningCLI; ``--trainer.strategy=ddp_local`` runs several processes.

PyTorch runs on one intra-op thread unless ``OMP_NUM_THREADS`` is set: a time step is many
small tensor operations, where a second thread costs more than it gives (on our 2-core machine
Diehl & Cook at batch 16 ran 3.5x slower with 2 threads while other work was running).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch
from lightning.pytorch.cli import LightningCLI

import celltrain.lightning.strategy  # noqa: F401  (registers the "ddp_local" strategy)
from celltrain.lightning.data import SplitDataModule
from celltrain.lightning.module import SpikingModule

DEFAULT_MODEL = {"class_path": "celltrain.lightning.DiehlCook"}
DEFAULT_DATA = {"class_path": "celltrain.lightning.DigitsDataModule"}


class CelltrainCLI(LightningCLI):
    """LightningCLI whose model and data default to Diehl & Cook on the digits."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.set_defaults({"model": DEFAULT_MODEL, "data": DEFAULT_DATA})


def make_cli(args: Sequence[str] | None = None, run: bool = True) -> CelltrainCLI:
    """Build (and with ``run`` execute) the command line on ``args`` (default
    ``sys.argv[1:]``). With ``run=False`` there is no subcommand: ``args`` configure the
    model, data and trainer, which the caller then drives (``cli.trainer.fit(cli.model, ...)``).
    """
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    return CelltrainCLI(
        SpikingModule,
        SplitDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={"max_epochs": 5, "log_every_n_steps": 10},
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        run=run,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``celltrain`` console script (``args`` default: ``sys.argv[1:]``)."""
    make_cli(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
