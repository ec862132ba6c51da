"""LogMonitors: scalars, histograms and images in TensorBoard's event files."""

import io
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning_helpers import QUIET, quiet_trainer, tiny_model

from celltrain.callbacks import LogMonitors
from celltrain.lightning import DigitsDataModule

pytestmark = QUIET
BATCHES = 3
BATCH_SIZE = 4
STEPS = 20
NEURONS = 10


class Probe(L.Callback):
    """Placed right after LogMonitors: what the network held when LogMonitors wrote, and every
    excitatory spike of the batch (own forward hook)."""

    def __init__(self):
        self.by_step = {}
        self.spikes = []
        self.handle = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        exc = pl_module.network.neurons["exc"]
        self.spikes = []
        self.handle = exc.register_forward_hook(
            lambda module, args, out: self.spikes.append(module.spike.clone())
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.handle.remove()
        network = pl_module.network
        self.by_step[trainer.global_step] = {
            "weight": network.connections["input_exc"].weight.detach().clone(),
            "theta": network.neurons["exc"].theta.detach().clone(),
            "spikes": torch.stack(self.spikes),  # (steps, batch, neurons)
        }

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        # neither the rasters nor the trainers' monitors record in validation
        assert not pl_module.network.neurons["exc"]._forward_hooks


def decode(image_event) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("L"))


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tmp_path_factory.mktemp("tb")
    L.seed_everything(0, verbose=False)
    model = tiny_model()
    probe = Probe()
    logger = TensorBoardLogger(root)
    trainer = quiet_trainer(
        root,
        max_epochs=1,
        limit_train_batches=BATCHES,
        limit_val_batches=1,
        logger=logger,
        log_every_n_steps=1,
        val_check_interval=2,  # a validation round between logged batches
        callbacks=[LogMonitors(every_n_batches=1), probe],
    )
    trainer.fit(model, DigitsDataModule(batch_size=BATCH_SIZE, shuffle=False))
    events = EventAccumulator(
        logger.log_dir,
        size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0},
    )
    events.Reload()
    return events, probe, model


def test_all_tags_are_written(tensorboard_run):
    events, _, _ = tensorboard_run
    tags = events.Tags()
    assert {"monitor/rate/exc", "monitor/rate/inh", "rate/exc", "rate/inh"} <= set(tags["scalars"])
    assert {
        "weight/input_exc",
        "weight/exc_inh",
        "weight/inh_exc",
        "theta/exc",
        "trace/stdp/input_exc/trace_pre",
        "trace/stdp/input_exc/trace_post",
    } <= set(tags["histograms"])
    assert {"raster/exc", "raster/inh", "receptive_fields/input_exc"} <= set(tags["images"])
    for kind, tag in (("scalars", "monitor/rate/exc"), ("histograms", "weight/input_exc")):
        series = getattr(events, kind.capitalize())(tag)
        assert [e.step for e in series] == [1, 2, 3]  # every batch, at the global step


def test_rates_are_the_batch_firing_rates_in_hz(tensorboard_run):
    events, probe, _ = tensorboard_run
    logged = {e.step: e.value for e in events.Scalars("monitor/rate/exc")}
    for step, value in logged.items():
        spikes = probe.by_step[step]["spikes"]
        expected = float(spikes.float().mean()) / (1.0 / 1000.0)  # per step of dt = 1 ms
        assert value == pytest.approx(expected, rel=1e-5)
    assert max(logged.values()) > 0
    # SpikingModule's own epoch rate: every spike of the epoch over its neuron-seconds
    (epoch,) = events.Scalars("rate/exc")
    every = torch.cat([probe.by_step[step]["spikes"] for step in sorted(probe.by_step)], 1)
    assert every.shape == (STEPS, BATCHES * BATCH_SIZE, NEURONS)
    assert epoch.value == pytest.approx(float(every.float().mean()) * 1000.0, rel=1e-5)


def test_histograms_hold_the_current_state(tensorboard_run):
    events, probe, _ = tensorboard_run
    for name, key, count in (
        ("weight/input_exc", "weight", 64 * NEURONS),
        ("theta/exc", "theta", NEURONS),
    ):
        for event in events.Histograms(name):
            histogram = event.histogram_value
            truth = probe.by_step[event.step][key]
            assert histogram.num == count
            assert histogram.min == pytest.approx(float(truth.min()), abs=1e-6)
            assert histogram.max == pytest.approx(float(truth.max()), abs=1e-6)
            assert histogram.sum == pytest.approx(float(truth.sum()), rel=1e-5)
    trace = events.Histograms("trace/stdp/input_exc/trace_pre")[-1].histogram_value
    assert trace.num == BATCH_SIZE * 64 and trace.max > 0


def test_images_show_the_raster_and_the_receptive_fields(tensorboard_run):
    pytest.importorskip("PIL")
    events, probe, _ = tensorboard_run
    for event in events.Images("raster/exc"):
        assert (event.height, event.width) == (NEURONS, STEPS)  # rows: neurons
        raster = decode(event)
        truth = probe.by_step[event.step]["spikes"][:, 0].t().numpy()  # sample 0
        np.testing.assert_array_equal(raster > 127, truth)
    # 10 neurons of 8x8 inputs: a 3 x 4 grid of 8x8 tiles with 1-pixel gaps
    for event in events.Images("receptive_fields/input_exc"):
        assert (event.height, event.width) == (3 * 9 - 1, 4 * 9 - 1)
        grid = decode(event).astype(float) / 255.0
        weight = probe.by_step[event.step]["weight"]
        scaled = (weight - weight.min()) / (weight.max() - weight.min())
        for k in (0, 5, 9):
            r, c = divmod(k, 4)
            tile = grid[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8]
            np.testing.assert_allclose(tile, scaled[k].reshape(8, 8).numpy(), atol=1 / 255 + 1e-6)
        assert grid[8, :].max() == 0 and grid[:, 8].max() == 0  # the gaps


def test_every_n_batches_and_other_loggers(tmp_path):
    """Every other batch; a logger without histograms and images gets the scalars only."""
    logger = CSVLogger(tmp_path)
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=0,
        logger=logger,
        callbacks=[LogMonitors(every_n_batches=2)],
    )
    trainer.fit(tiny_model(), DigitsDataModule(batch_size=2, shuffle=False))
    import csv

    with open(Path(logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("monitor/rate/exc")]
    assert [int(r["step"]) for r in rows] == [2, 4]


def test_without_a_logger_nothing_is_attached(tmp_path):
    log = LogMonitors(every_n_batches=1)
    hooks = []

    class CountHooks(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            hooks.append(len(pl_module.network.neurons["inh"]._forward_hooks))

    trainer = quiet_trainer(
        tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        callbacks=[log, CountHooks()],
    )
    trainer.fit(tiny_model(), DigitsDataModule(batch_size=2, shuffle=False))
    assert trainer.global_step == 2
    assert hooks == [0, 0]  # no raster monitor on the inhibitory neurons (STDP has none there)
