"""``SpikingModule``: a LightningModule that trains a spiking network with local rules."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from celltrain.callbacks import ApplyUpdates, LogMonitors, MonitorMode
from celltrain.learn import CellTrainer
from celltrain.lightning.rates import FiringRate
from celltrain.lightning.readout import RateReadout
from celltrain.neural import Encoder, Layer
from celltrain.utils.checks import positive


class StepCounter(torch.optim.Optimizer):
    """An optimizer that changes nothing.

    Local rules need no optimizer, but Lightning counts ``trainer.global_step`` in optimizer
    steps; with none, ``global_step`` stays 0 and ``max_steps``, step-based checkpointing and
    step-based logging break. :class:`SpikingModule` steps this once per training batch so each
    batch is one global step. It holds one empty tensor and no state.

    Example::

        >>> optimizer = StepCounter()
        >>> optimizer.step() is None  # changes nothing; Lightning counts the call
        True
    """

    def __init__(self) -> None:
        super().__init__([torch.zeros(0)], {})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201
        """Call ``closure`` if given (Lightning's no-op closure), change nothing."""
        return closure() if closure is not None else None


class SpikingModule(L.LightningModule):
    """A spiking network, its local-learning trainers, an encoder and a readout.

    Training batch ``(x, y, index)``: reset the network, clear the trainers' monitors, present
    ``encoder(x * max_rate, index, epoch)`` for ``encoder.steps`` time steps calling every
    trainer after each step (or, when every trainer learns windows, all steps in one
    ``network.run`` and each trainer once: see :meth:`runs_windows`), feed the output
    population's spike counts to the readout, and add every population's counts to its
    :class:`~celltrain.lightning.rates.FiringRate` metric (``rates[name]``). With several
    processes the readout is fed the counts of all ranks' batches, so it is identical on every
    rank and in rank 0's checkpoints. At the end of each training epoch the mean firing rate
    (Hz) of every population over the epoch's samples (of all ranks) is logged as
    ``rate/<name>``; per-batch rates are logged by :class:`~celltrain.callbacks.LogMonitors`
    (``monitor/rate/<name>``). Learning rules only add pending updates; the
    :class:`~celltrain.callbacks.ApplyUpdates` callback applies them. Validation and test run the
    same simulation without learning (epoch 0's spike trains, so every evaluation
    sees the same input) and log ``val/accuracy`` / ``test/accuracy`` (torchmetrics) from the
    readout's predictions; ``predict_step`` returns the predicted classes ``(B,)``.

    ``automatic_optimization`` is off and there is no loss; a :class:`StepCounter` optimizer
    that changes nothing is stepped once per batch so that ``global_step`` counts batches.
    Default callbacks (``MonitorMode``, ``ApplyUpdates``, ``LogMonitors``) are added unless the
    Trainer already has one of the same type, which then wins.

    Args:
        network: a :class:`~celltrain.neural.Layer` (or a module with ``reset()``,
            ``forward(**inputs) -> dict`` of spikes and ``dt``).
        trainers: the learning rules, by name (or a single one, named ``"rule"``).
        encoder: turns rates (Hz) into spikes; its ``dt`` must equal the network's.
        output: name of the output population (read by the readout).
        num_classes: number of classes of the readout.
        input: name of the network input the encoded data is given to.
        max_rate: rate (Hz) of intensity 1.
        reset_readout_each_epoch: forget the readout's class statistics at the start of each
            training epoch, so labels are assigned from the latest epoch's activity.

    Example::

        >>> from celltrain.learn import STDP
        >>> from celltrain.neural import PoissonEncoder, diehl_cook_layer
        >>> network = diehl_cook_layer(inputs=64, neurons=10)
        >>> stdp = STDP()
        >>> _ = stdp.register_cell("input_exc", network.cell("input_exc"))
        >>> module = SpikingModule(network, stdp, PoissonEncoder(steps=50))
        >>> counts = module.simulate(torch.rand(2, 64), torch.arange(2), epoch=0, learn=False)
        >>> counts["exc"].shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        network: nn.Module,
        trainers: Mapping[str, CellTrainer] | CellTrainer,
        encoder: Encoder,
        output: str = "exc",
        num_classes: int = 10,
        input: str = "input",
        max_rate: float = 63.75,
        reset_readout_each_epoch: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if isinstance(trainers, CellTrainer):
            trainers = {"rule": trainers}
        for name, trainer in trainers.items():
            if not isinstance(trainer, CellTrainer):
                raise TypeError(
                    f"trainers[{name!r}] must be a CellTrainer, got {type(trainer).__name__}"
                )
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be an Encoder, got {type(encoder).__name__}")
        if not math.isclose(encoder.dt, network.dt):
            raise ValueError(
                f"encoder.dt must equal the network's dt={network.dt} ms, got {encoder.dt}"
            )
        neurons = getattr(network, "neurons", {})
        if output not in neurons:
            raise ValueError(
                f"output must name a neuron population {sorted(neurons)}, got {output!r}"
            )
        if isinstance(network, Layer) and input not in network.inputs:
            raise ValueError(
                f"input must name a network input {list(network.inputs)}, got {input!r}"
            )
        self.network = network
        self.trainers = nn.ModuleDict(dict(trainers))
        self.encoder = encoder
        self.output = output
        self.input_name = input
        self.max_rate = positive("max_rate", max_rate)
        self.reset_readout_each_epoch = reset_readout_each_epoch
        self.readout = RateReadout(neurons[output].size, num_classes)
        self.readout.sync_on_compute = False  # training_step keeps it identical on all ranks
        self.rates = nn.ModuleDict({name: FiringRate() for name in neurons})
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self._assignment: torch.Tensor | None = None

    # simulation ---------------------------------------------------------------------------
    def unpack(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Split a batch into ``(x, y, index)``; ``(x, y)`` batches get positional indices."""
        if isinstance(batch, (list, tuple)) and len(batch) == 3:
            x, y, index = batch
        elif isinstance(batch, (list, tuple)) and len(batch) == 2:
            x, y = batch
            start = batch_idx * x.shape[0]
            index = torch.arange(start, start + x.shape[0], device=x.device)
        else:
            raise ValueError("a batch must be (x, y) or (x, y, index)")
        return x, y, index

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` has the shape the network's input expects and
        holds intensities in ``[0, 1]`` (``max_rate`` is the rate of intensity 1)."""
        if x.numel() and x.dtype != torch.bool:
            low, high = torch.stack(torch.aminmax(x.detach())).tolist()  # one host sync
            if not (0.0 <= low and high <= 1.0):
                raise ValueError(
                    f"batch features must be intensities in [0, 1] (max_rate={self.max_rate} Hz "
                    f"is intensity 1), got values in [{low}, {high}]"
                )
        expected = [
            c.in_shape
            for name, c in getattr(self.network, "connections", {}).items()
            if self.network.wiring[name][0] == self.input_name
        ]
        if expected and tuple(x.shape[1:]) != expected[0]:
            raise ValueError(
                f"batch features must have shape (batch, {', '.join(map(str, expected[0]))}) "
                f"for input {self.input_name!r}, got {tuple(x.shape)}"
            )

    def step_trainers(self, step: int, spikes: dict[str, torch.Tensor], y: Any) -> None:
        """Call every trainer once after time step ``step``. Override for rules that need more
        (e.g. a reward for ``MSTDP``)."""
        for trainer in self.trainers.values():
            trainer()

    def runs_windows(self, learn: bool) -> bool:
        """Whether :meth:`simulate` presents a whole sample in one
        :meth:`~celltrain.neural.Layer.run` (the fast path) rather than step by step.

        It does when the network is a :class:`~celltrain.neural.Layer` and, when learning,
        every trainer learns windows (``learns_windows``, e.g. ``STDP``) and
        :meth:`step_trainers` is not overridden (an override asks to be called every step).
        The result is the same either way, up to float rounding.
        """
        if not isinstance(self.network, Layer):
            return False
        if not learn:
            return True
        return not is_overridden("step_trainers", self, SpikingModule) and all(
            trainer.learns_windows for trainer in self.trainers.values()
        )

    @torch.no_grad()
    def simulate(
        self, x: torch.Tensor, index: torch.Tensor, epoch: int, learn: bool, y: Any = None
    ) -> dict[str, torch.Tensor]:
        """Run one batch through the network; return spike counts per population ``(B, *shape)``.

        Args:
            x: intensities ``(B, *input_shape)`` in ``[0, 1]``.
            index: the samples' indices ``(B,)`` (for the encoder).
            epoch: the encoder epoch.
            learn: call the trainers after each step (or once after the window, see
                :meth:`runs_windows`).
            y: labels, passed to :meth:`step_trainers`.
        """
        self.check_input(x)
        self.network.reset()
        for trainer in self.trainers.values():
            trainer.clear()
        spikes = self.encoder(x * self.max_rate, index, epoch)
        if self.runs_windows(learn):
            out = self.network.run(**{self.input_name: spikes})
            if learn:
                for trainer in self.trainers.values():
                    trainer()
            return {name: spike.sum(0, dtype=torch.int32) for name, spike in out.items()}
        counts: dict[str, torch.Tensor] = {}
        for step in range(spikes.shape[0]):
            out = self.network(**{self.input_name: spikes[step]})
            if learn:
                self.step_trainers(step, out, y)
            for name, spike in out.items():
                counts[name] = counts[name] + spike if name in counts else spike.to(torch.int32)
        return counts

    # Lightning hooks ------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return StepCounter()

    def configure_callbacks(self) -> list[L.Callback]:
        present = {type(c) for c in (self.trainer.callbacks if self._trainer else [])}
        defaults = [MonitorMode(), ApplyUpdates(), LogMonitors()]
        return [c for c in defaults if not any(issubclass(p, type(c)) for p in present)]

    def on_train_epoch_start(self) -> None:
        if self.reset_readout_each_epoch:
            self.readout.reset()
        for rate in self.rates.values():
            rate.reset()

    def on_train_epoch_end(self) -> None:
        # Once per epoch rather than self.log(..., on_epoch=True) at every batch: each self.log
        # call moves and deep-copies Lightning's record of the value, a large part of a small
        # batch (benchmarks/README.md). Lightning calls compute(), which sums the states over
        # ranks, so every rank logs the same rate.
        for name, rate in self.rates.items():
            if rate.update_count:
                self.log(f"rate/{name}", rate, on_step=False, on_epoch=True)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x, y, index = self.unpack(batch, batch_idx)
        counts = self.simulate(x, index, self.current_epoch, learn=True, y=y)
        output, labels = counts[self.output], y
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank accumulates the union of the ranks' batches, so the readout is
            # identical on all ranks (and complete in rank 0's checkpoint)
            output = self.all_gather(output).flatten(0, 1)
            labels = self.all_gather(labels).flatten(0, 1)
        self.readout.update(output, labels)
        self.optimizers().step()
        seconds = self.encoder.steps * self.network.dt / 1000.0
        for name, rate in self.rates.items():
            if name in counts:
                rate.update(counts[name], seconds)

    def _evaluate(self, batch: Any, batch_idx: int, metric: MulticlassAccuracy, key: str) -> None:
        x, y, index = self.unpack(batch, batch_idx)
        self.readout.check_labels(y, x.shape[0])  # as training labels are checked
        counts = self.simulate(x, index, 0, learn=False)
        prediction = self.readout.predict(counts[self.output], self.assignment())
        metric.update(prediction, y)
        self.log(key, metric, on_epoch=True, on_step=False, prog_bar=True, batch_size=x.shape[0])

    def assignment(self) -> torch.Tensor:
        """The readout's current neuron-to-class assignment (computed once per evaluation)."""
        if self._assignment is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                self._assignment = self.readout.compute().clone()
        return self._assignment

    def _forget_assignment(self) -> None:
        self._assignment = None

    on_validation_epoch_start = _forget_assignment
    on_test_epoch_start = _forget_assignment
    on_predict_epoch_start = _forget_assignment

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, self.val_accuracy, "val/accuracy")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, self.test_accuracy, "test/accuracy")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x, _, index = self.unpack(batch, batch_idx)
        counts = self.simulate(x, index, 0, learn=False)
        return self.readout.predict(counts[self.output], self.assignment())
