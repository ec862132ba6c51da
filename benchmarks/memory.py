"""Memory during a long fit: monitors and updaters must hold constant memory.

Fits Diehl & Cook on the digits for ``--samples`` training samples (default 20,000: several
epochs of the 1,257-sample training split) and prints, after the first training batch, the
middle one and the last: the process's resident memory, and the bytes of every tensor held by
the trainers' monitors (their state and the latest ``Layer.run`` window they keep) and by the
network's updaters.

    python benchmarks/memory.py [--samples N] [--steps T] [--batch-size B]
"""

from __future__ import annotations

import argparse
import math
import time

import lightning as L
import torch

from celltrain.callbacks.apply_updates import distinct_updaters
from celltrain.callbacks.monitor_mode import cell_trainers
from celltrain.lightning import DiehlCook, DigitsDataModule


def resident_mb() -> float:
    """Current resident set size of this process (MB), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def window_tensors(reducer: torch.nn.Module) -> list[torch.Tensor]:
    """Tensors a reducer keeps outside its buffers: the latest window of a ``Layer.run``
    (``recent()``, or what it is computed from on first use, and ``window_start()``)."""
    found = []
    for value in reducer.__dict__.values():
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif callable(value) and getattr(value, "__closure__", None):
            found += [c.cell_contents for c in value.__closure__ if _tensor_cell(c)]
    return found


def _tensor_cell(cell: object) -> bool:
    try:
        return isinstance(cell.cell_contents, torch.Tensor)
    except ValueError:  # an empty cell
        return False


def held_bytes(pl_module: L.LightningModule) -> tuple[int, int]:
    """Bytes of the tensors held by the trainers' monitors (buffers and the latest window) and
    by the updaters."""
    held = {
        id(t): t
        for trainer in cell_trainers(pl_module)
        for monitor in trainer.monitors
        for t in [*monitor.buffers(), *window_tensors(monitor.reducer)]
    }
    monitors = sum(t.numel() * t.element_size() for t in held.values())
    updaters = sum(
        t.numel() * t.element_size()
        for updater in distinct_updaters(pl_module)
        for t in updater.buffers()
    )
    return monitors, updaters


class Probe(L.Callback):
    """Record memory after the first, the middle and the last training batch (the middle one
    tells a plateau of the allocator from steady growth)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float, int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step, last = trainer.global_step, trainer.max_steps
        label = {1: "first batch", last // 2: "middle", last: "last batch"}.get(step)
        if label is not None:
            self.rows.append((label, step, resident_mb(), *held_bytes(pl_module)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    batches = math.ceil(args.samples / args.batch_size)
    probe = Probe()
    trainer = L.Trainer(
        max_steps=batches,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    model = DiehlCook(steps=args.steps)
    start = time.perf_counter()
    trainer.fit(model, DigitsDataModule(batch_size=args.batch_size))
    took = time.perf_counter() - start
    print(
        f"fit of {batches * args.batch_size} samples ({batches} batches, {args.steps} steps) "
        f"in {took:.0f} s"
    )
    print(f"{'when':<12} {'step':>6} {'RSS MB':>8} {'monitors B':>11} {'updaters B':>11}")
    for label, step, rss, monitors, updaters in probe.rows:
        print(f"{label:<12} {step:>6} {rss:>8.1f} {monitors:>11} {updaters:>11}")


if __name__ == "__main__":
    main()
