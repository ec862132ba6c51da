"""``LogMonitors``: write what the network and its monitors hold to the logger."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from celltrain.callbacks.monitor_mode import cell_trainers
from celltrain.neural import ALIF, Layer, Linear
from celltrain.observe import History, Monitor, Trace


def raster_image(history: torch.Tensor) -> torch.Tensor:
    """Spike raster ``(1, neurons, steps)`` in ``[0, 1]`` from a ``(steps, *shape)`` history."""
    return history.reshape(history.shape[0], -1).t().float().unsqueeze(0)


def receptive_field_grid(weight: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """Tile each target neuron's input weights ``(out, in)`` as an image, ``(1, H, W)`` in
    ``[0, 1]`` (each field scaled by the weight's overall range)."""
    out = weight.shape[0]
    h, w = image_shape
    columns = math.ceil(math.sqrt(out))
    rows = math.ceil(out / columns)
    low, high = float(weight.min()), float(weight.max())
    scaled = (weight - low) / (high - low) if high > low else torch.zeros_like(weight)
    grid = torch.zeros(rows * (h + 1) - 1, columns * (w + 1) - 1)
    for k in range(out):
        r, c = divmod(k, columns)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = (
            scaled[k].reshape(h, w).cpu()
        )
    return grid.unsqueeze(0)


class LogMonitors(L.Callback):
    """Every ``every_n_batches`` training batches, on rank 0, write to the logger with the
    global step as the x axis:

    - scalars ``monitor/rate/<population>``: mean firing rate (Hz) of each population in the
      batch (any logger);
    - histograms (TensorBoard): ``weight/<connection>``, ``theta/<neuron>`` for ALIF
      thresholds, and ``trace/<trainer>/<cell>/<monitor>`` for the trainers' trace monitors;
    - images (TensorBoard): ``raster/<population>`` (spikes of sample 0 over the batch's time
      steps; rows are neurons) and ``receptive_fields/<connection>`` (the input weights of
      every target neuron as a grid) for ``Linear`` connections from a network input whose
      size is a square (or ``image_shape``).

    The rasters come from :class:`~celltrain.observe.History` monitors this callback attaches
    to the network's populations; they record only during the batches that are logged. With no
    logger nothing is written.

    Args:
        every_n_batches: log after every this many training batches (>= 1).
        image_shape: ``(H, W)`` of the input images for receptive fields (default: square).

    Example::

        >>> import lightning as L
        >>> callback = LogMonitors(every_n_batches=10, image_shape=(8, 8))
        >>> callback.every_n_batches, callback.image_shape
        (10, (8, 8))
    """

    def __init__(self, every_n_batches: int = 50, image_shape: tuple[int, int] | None = None):
        if not isinstance(every_n_batches, int) or every_n_batches < 1:
            raise ValueError(f"every_n_batches must be an int >= 1, got {every_n_batches!r}")
        self.every_n_batches = every_n_batches
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self._rasters: dict[str, Monitor] = {}

    def _network(self, pl_module: L.LightningModule) -> Layer | None:
        network = getattr(pl_module, "network", None)
        return network if isinstance(network, Layer) else None

    def _due(self, trainer: L.Trainer, batch_idx: int) -> bool:
        return trainer.logger is not None and (batch_idx + 1) % self.every_n_batches == 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        network = self._network(pl_module)
        if network is None or not trainer.is_global_zero or not self._due(trainer, batch_idx):
            return
        steps = getattr(getattr(pl_module, "encoder", None), "steps", 1)
        for name in network.neurons:
            monitor = self._rasters.get(name)
            if monitor is None or monitor.reducer.size != steps:
                monitor = Monitor(History(steps), network, f"neurons.{name}.spike")
                self._rasters[name] = monitor
            monitor.clear()
            monitor.register()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        for monitor in self._rasters.values():
            monitor.deregister()
        if not trainer.is_global_zero or not self._due(trainer, batch_idx):
            return
        step = trainer.global_step
        network = self._network(pl_module)
        scalars = {}
        for name, monitor in self._rasters.items():
            history = monitor.view()
            if history is None:
                continue
            # mean spikes per neuron and step, over the length of one step (s)
            step_seconds = network.dt / 1000.0
            scalars[f"monitor/rate/{name}"] = float(history.float().mean()) / step_seconds
        if scalars:
            trainer.logger.log_metrics(scalars, step=step)
        if isinstance(trainer.logger, TensorBoardLogger):
            self._tensorboard(trainer.logger.experiment, pl_module, network, step)

    def _tensorboard(
        self, writer: Any, pl_module: L.LightningModule, network: Layer | None, step: int
    ) -> None:
        if network is not None:
            for name, connection in network.connections.items():
                writer.add_histogram(f"weight/{name}", connection.weight.detach().cpu(), step)
            for name, neuron in network.neurons.items():
                if isinstance(neuron, ALIF):
                    writer.add_histogram(f"theta/{name}", neuron.theta.detach().cpu(), step)
            for name, monitor in self._rasters.items():
                history = monitor.view()
                if history is not None:
                    writer.add_image(f"raster/{name}", raster_image(history[:, 0]), step)
            for name, connection in network.connections.items():
                source = network.wiring[name][0]
                shape = self.image_shape or _square(connection.in_shape)
                if isinstance(connection, Linear) and source in network.inputs and shape:
                    grid = receptive_field_grid(connection.weight.detach(), shape)
                    writer.add_image(f"receptive_fields/{name}", grid, step)
        for trainer_name, cell_trainer in _named_trainers(pl_module):
            for (cell, monitor_name), monitor in cell_trainer.named_monitors:
                value = monitor.peek()
                if isinstance(monitor.reducer, Trace) and value is not None:
                    tag = f"trace/{trainer_name}/{cell}/{monitor_name}"
                    writer.add_histogram(tag, value.detach().float().cpu(), step)

    def state_dict(self) -> dict[str, Any]:
        return {"every_n_batches": self.every_n_batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass  # nothing to restore: the monitors are rebuilt on the next logged batch


def _square(shape: tuple[int, ...]) -> tuple[int, int] | None:
    size = math.prod(shape)
    side = math.isqrt(size)
    return (side, side) if side * side == size else None


def _named_trainers(pl_module: L.LightningModule) -> list[tuple[str, Any]]:
    trainers = getattr(pl_module, "trainers", None)
    if trainers is not None and hasattr(trainers, "items"):
        return list(trainers.items())
    return [(type(t).__name__, t) for t in cell_trainers(pl_module)]
