"""Fit a tiny Diehl & Cook model and save its learned state after every training batch.

Run as a script (Lightning's popen launcher re-runs it for every rank > 0)::

    python ddp_fit.py OUT_DIR --devices 2 --strategy ddp_local --batch-size 4 --batches 3

Each rank writes ``OUT_DIR/rank{R}_batch{I}.pt`` (the learned state after training batch
``I``, once the updates are applied) and ``OUT_DIR/rank{R}_rates.pt`` (the epoch rates it
logged); rank 0 writes ``OUT_DIR/final.ckpt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import lightning as L  # noqa: E402
from lightning_helpers import learned_state, quiet_trainer, tiny_model  # noqa: E402

from celltrain.callbacks import ApplyUpdates  # noqa: E402
from celltrain.lightning import DigitsDataModule  # noqa: E402


class SaveLearnedState(L.Callback):
    """After every training batch (placed after ApplyUpdates), save the learned state."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        state = learned_state(pl_module)
        state["index"] = batch[2].detach().clone()
        state["world_size"] = torch.tensor(trainer.world_size)
        torch.save(state, self.out / f"rank{trainer.global_rank}_batch{batch_idx}.pt")


def run(out: Path, devices: int, strategy: str, batch_size: int, batches: int) -> None:
    """Fit one epoch of ``batches`` batches of ``batch_size`` samples per process."""
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(0, verbose=False)
    model = tiny_model()
    data = DigitsDataModule(batch_size=batch_size, shuffle=False)
    trainer = quiet_trainer(
        out,
        devices=devices,
        strategy=strategy,
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        callbacks=[ApplyUpdates(), SaveLearnedState(out)],
    )
    trainer.fit(model, data)
    rates = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("rate/")}
    torch.save(rates, out / f"rank{trainer.global_rank}_rates.pt")
    trainer.save_checkpoint(out / "final.ckpt")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--strategy", default="ddp_local")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.out, args.devices, args.strategy, args.batch_size, args.batches)


if __name__ == "__main__":
    main()
