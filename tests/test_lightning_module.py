"""SpikingModule inside a Lightning Trainer: steps, checkpoints, monitor recording, validation,
bad input."""

from collections import Counter

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning_helpers import QUIET, learned_state, quiet_trainer, tiny_model
from torch.utils.data import DataLoader

from celltrain.callbacks import ApplyUpdates, LogMonitors, MonitorMode
from celltrain.learn import STDP
from celltrain.lightning import (
    DigitsDataModule,
    IndexedDataset,
    LocalDDPStrategy,
    SpikingModule,
)
from celltrain.neural import PoissonEncoder, diehl_cook_layer
from celltrain.observe import Count, Monitor

pytestmark = QUIET
STEPS = 20


@pytest.fixture(scope="module")
def digits():
    data = DigitsDataModule(batch_size=4, shuffle=False)
    data.setup()
    return data


def fresh_data(digits, **kwargs):
    """A data module sharing the loaded splits of ``digits`` (no reloading)."""
    options = {"batch_size": 4, "shuffle": False}
    options.update(kwargs)
    data = DigitsDataModule(**options)
    data.splits = digits.splits
    return data


class AfterBatch(L.Callback):
    """Record the learned state after every training batch (placed after ApplyUpdates)."""

    def __init__(self):
        self.states = []
        self.global_steps = []
        self.epochs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append(learned_state(pl_module))
        self.global_steps.append(trainer.global_step)
        self.epochs.append(trainer.current_epoch)


# max_steps, global_step, step checkpoints ---------------------------------------------------
def test_max_steps_stops_after_that_many_batches_across_epochs(tmp_path, digits):
    L.seed_everything(0, verbose=False)
    recorder = AfterBatch()
    checkpoints = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=2, save_top_k=-1
    )
    trainer = quiet_trainer(
        tmp_path,
        max_steps=7,
        max_epochs=5,  # a bound, should steps not be counted
        limit_train_batches=3,  # 7 steps cross two epoch boundaries
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[ApplyUpdates(), recorder, checkpoints],
    )
    model = tiny_model()
    trainer.fit(model, fresh_data(digits))

    assert trainer.global_step == 7
    assert recorder.global_steps == [1, 2, 3, 4, 5, 6, 7]  # one global step per batch
    assert recorder.epochs == [0, 0, 0, 1, 1, 1, 2]
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["step=2.ckpt", "step=4.ckpt", "step=6.ckpt"]
    for step in (2, 4, 6):
        checkpoint = torch.load(tmp_path / "ckpt" / f"step={step}.ckpt", weights_only=False)
        assert checkpoint["global_step"] == step
        # the checkpoint holds the weights as they were after that batch's update
        after = recorder.states[step - 1]
        state = checkpoint["state_dict"]
        torch.testing.assert_close(state["network.connections.input_exc.weight"], after["weight"])
        torch.testing.assert_close(state["network.neurons.exc.theta"], after["theta"])
    # learning happened between the checkpoints
    assert not torch.equal(recorder.states[1]["weight"], recorder.states[3]["weight"])


# monitors record in training batches only ------------------------------------------------------
class Phases(L.Callback):
    """Track which loop runs, and check the trainers' monitors at batch boundaries."""

    def __init__(self, count_monitor):
        self.phase = "idle"
        self.count_monitor = count_monitor
        self.val_batches = Counter()
        self.train_batches_per_epoch = Counter()
        self.readout_total = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.phase = "train"
        self.readout_total = float(pl_module.readout.class_counts.sum())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.phase = "idle"
        self.train_batches_per_epoch[trainer.current_epoch] += 1
        # cleared at the batch start, then recorded once per time step of this batch
        assert self.count_monitor.reducer.steps == STEPS
        assert all(m.registered for m in pl_module.trainers["stdp"].monitors)
        # it counted exactly the excitatory spikes the readout received in this batch
        spikes = float(self.count_monitor.peek().sum())
        assert spikes == float(pl_module.readout.class_counts.sum()) - self.readout_total

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.phase = "sanity" if trainer.sanity_checking else "val"
        self.val_batches[self.phase] += 1

    def _evaluation_end(self, trainer, pl_module, *args):
        assert not any(m.registered for m in pl_module.trainers["stdp"].monitors)
        assert self.count_monitor.reducer.steps == 0  # cleared by the simulation, no record
        self.phase = "idle"

    on_validation_batch_end = _evaluation_end
    on_test_batch_end = _evaluation_end
    on_predict_batch_end = _evaluation_end

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.phase = "test"

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.phase = "predict"


def test_monitors_record_only_in_training_batches(tmp_path, digits, monkeypatch):
    L.seed_everything(0, verbose=False)
    model = tiny_model()
    stdp = model.trainers["stdp"]
    count = stdp.add_monitor("input_exc", "count", "neuron.spike", Monitor.partial(Count))
    phases = Phases(count)
    records = Counter()  # (monitor id, phase) -> records; survives the monitors' clear()
    original = Monitor.record

    original_window = Monitor.record_window

    def counting_record(self):
        records[id(self), phases.phase] += 1
        original(self)

    def counting_record_window(self, values):  # Layer.run: one call for all steps
        records[id(self), phases.phase] += values.shape[0]
        original_window(self, values)

    monkeypatch.setattr(Monitor, "record", counting_record)
    monkeypatch.setattr(Monitor, "record_window", counting_record_window)
    epochs, train_batches = 3, 4
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=epochs,
        limit_train_batches=train_batches,
        val_check_interval=2,  # two validation rounds per epoch
        limit_val_batches=2,
        num_sanity_val_steps=2,
        limit_test_batches=2,
        limit_predict_batches=2,
        callbacks=[phases],
    )
    data = fresh_data(digits)
    trainer.fit(model, data)

    # validation really ran: the sanity check, then twice per epoch
    assert phases.val_batches == {"sanity": 2, "val": epochs * 2 * 2}
    assert phases.train_batches_per_epoch == dict.fromkeys(range(epochs), train_batches)
    monitors = list(stdp.monitors)
    assert count in monitors and len(monitors) == 5  # STDP's four, and the Count
    expected = {(id(m), "train"): epochs * train_batches * STEPS for m in monitors}

    def of_trainer():
        return {key: n for key, n in records.items() if key[0] in {id(m) for m in monitors}}

    assert of_trainer() == expected

    test_result = trainer.test(model, datamodule=data, verbose=False)
    predictions = trainer.predict(model, datamodule=data)
    assert of_trainer() == expected  # neither test nor predict recorded
    assert "test/accuracy" in test_result[0]
    assert [p.shape for p in predictions] == [(4,), (4,)]
    assert all(
        p.dtype == torch.long and 0 <= int(p.min()) <= int(p.max()) < 10 for p in predictions
    )
    # the default callbacks were added once and stay single across fit, test and predict
    kinds = Counter(type(c) for c in trainer.callbacks)
    assert kinds[MonitorMode] == kinds[ApplyUpdates] == kinds[LogMonitors] == 1


def test_evaluation_before_any_training_records_nothing(tmp_path, digits, monkeypatch):
    model = tiny_model()
    monitors = list(model.trainers["stdp"].monitors)
    assert all(m.registered for m in monitors)  # new monitors start recording
    records = Counter()
    original = Monitor.record

    def counting_record(self):
        records[id(self)] += 1
        original(self)

    monkeypatch.setattr(Monitor, "record", counting_record)
    trainer = quiet_trainer(
        tmp_path, limit_val_batches=1, limit_test_batches=1, limit_predict_batches=1
    )
    data = fresh_data(digits)
    for run in (trainer.test, trainer.predict, trainer.validate):
        for monitor in monitors:  # whatever the previous run left
            monitor.register()
        run(model, datamodule=data)
        assert not any(records[id(m)] for m in monitors), run.__name__


def test_validation_every_epoch_does_not_break_learning(tmp_path, digits):
    """State created under inference mode must not break training afterwards.

    Lightning 2.6 validates inside ``fit`` under ``no_grad`` but runs ``trainer.validate`` (and
    test, predict) under ``inference_mode``; a validation before the fit sets the trap."""
    L.seed_everything(0, verbose=False)
    model = tiny_model()
    recorder = AfterBatch()
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=1,
        inference_mode=True,
        callbacks=[ApplyUpdates(), recorder],
    )
    data = fresh_data(digits)
    trainer.validate(model, datamodule=data, verbose=False)
    exc = model.network.neurons["exc"]
    assert exc.spike.is_inference() and exc.voltage.is_inference()  # the trap is set
    trainer.fit(model, data)
    assert len(recorder.states) == 4
    # both epochs learn, the second one after a validation round: weights and thresholds move
    for a, b in ((0, 1), (1, 3)):
        assert not torch.equal(recorder.states[a]["weight"], recorder.states[b]["weight"])
        assert not torch.equal(recorder.states[a]["theta"], recorder.states[b]["theta"])
    assert all(m.registered is False for m in model.trainers["stdp"].monitors)
    assert "val/accuracy" in trainer.callback_metrics
    trainer.test(model, datamodule=data, verbose=False)  # inference mode again, after training


def test_strategy_is_registered_and_unknown_strategies_fail():
    trainer = L.Trainer(
        strategy="ddp_local", accelerator="cpu", devices=1, logger=False, enable_progress_bar=False
    )
    assert isinstance(trainer.strategy, LocalDDPStrategy)
    with pytest.raises(ValueError, match="nope"):
        L.Trainer(strategy="nope", accelerator="cpu", logger=False)


# bad input ---------------------------------------------------------------------------------
def loader(x, y, batch_size=4):
    return DataLoader(IndexedDataset(x, y), batch_size=batch_size)


def test_wrong_feature_size_names_both_shapes(tmp_path):
    model = tiny_model()  # 64 inputs
    trainer = quiet_trainer(tmp_path, max_steps=1)
    bad = loader(torch.rand(8, 16), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, 64\).*\(4, 16\)"):
        trainer.fit(model, train_dataloaders=bad)


def test_labels_out_of_range_for_the_readout(tmp_path):
    model = tiny_model(num_classes=3)
    trainer = quiet_trainer(tmp_path, max_steps=1)
    bad = loader(torch.rand(8, 64), torch.tensor([0, 1, 2, 3, 0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        trainer.fit(model, train_dataloaders=bad)


def test_two_element_batches_get_positional_indices(tmp_path):
    model = tiny_model()
    x, y = torch.rand(3, 64), torch.zeros(3, dtype=torch.long)
    _, _, index = model.unpack((x, y), 2)
    assert index.tolist() == [6, 7, 8]
    with pytest.raises(ValueError, match="batch must be"):
        model.unpack(x, 0)


def network_and_rule():
    network = diehl_cook_layer(inputs=16, neurons=4)
    stdp = STDP()
    stdp.register_cell("input_exc", network.cell("input_exc"))
    return network, stdp


def test_encoder_dt_must_match_the_network():
    network, stdp = network_and_rule()
    with pytest.raises(ValueError, match=r"encoder\.dt must equal the network's dt=1\.0"):
        SpikingModule(network, stdp, PoissonEncoder(10, dt=0.5))


def test_constructor_rejects_bad_names_and_types():
    network, stdp = network_and_rule()
    with pytest.raises(ValueError, match="output must name a neuron population"):
        SpikingModule(network, stdp, PoissonEncoder(10), output="nope")
    with pytest.raises(ValueError, match="input must name a network input"):
        SpikingModule(network, stdp, PoissonEncoder(10), input="nope")
    with pytest.raises(TypeError, match=r"trainers\['bad'\] must be a CellTrainer"):
        SpikingModule(network, {"bad": torch.nn.Linear(1, 1)}, PoissonEncoder(10))
    with pytest.raises(TypeError, match="encoder must be an Encoder"):
        SpikingModule(network, stdp, torch.nn.Identity())
    module = SpikingModule(network, stdp, PoissonEncoder(10))
    assert list(module.trainers) == ["rule"]
