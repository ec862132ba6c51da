"""ApplyUpdates: when updates are applied, replacing the default instance, its state."""

from collections import Counter

import lightning as L
import pytest
import torch
from lightning_helpers import QUIET, learned_state, quiet_trainer, tiny_model

from celltrain.callbacks import ApplyUpdates, LogMonitors, MonitorMode
from celltrain.learn import CellTrainer
from celltrain.lightning import DigitsDataModule
from celltrain.neural import Unbounded

pytestmark = QUIET
BATCHES = 7
BATCH_SIZE = 3


class Watch(L.Callback):
    """Count training batches; at the start of each and at the end of training record the
    learned state and whether updates are pending (so the order of callbacks does not matter:
    ``states[b]`` is the state after ``b`` batches)."""

    def __init__(self):
        self.batches = 0
        self.states = []
        self.pending = []

    def _record(self, pl_module):
        self.states.append(learned_state(pl_module))
        network = pl_module.network
        self.pending.append(
            network.connections["input_exc"].updater.pending
            or network.neurons["exc"].updater.pending
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._record(pl_module)
        self.batches += 1

    def on_train_end(self, trainer, pl_module):
        self._record(pl_module)


class MyApplyUpdates(ApplyUpdates):
    pass


def fit(tmp_path, monkeypatch, callbacks):
    """Fit BATCHES batches; return the watcher and the batch numbers at which update() ran."""
    watch = Watch()
    calls = []
    original = CellTrainer.update

    def counting_update(self, **kwargs):
        calls.append(watch.batches)
        original(self, **kwargs)

    monkeypatch.setattr(CellTrainer, "update", counting_update)
    L.seed_everything(0, verbose=False)
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=BATCHES, callbacks=[*callbacks, watch]
    )
    trainer.fit(tiny_model(), DigitsDataModule(batch_size=BATCH_SIZE, shuffle=False))
    return trainer, watch, calls


def test_default_applies_once_per_batch(tmp_path, monkeypatch):
    trainer, watch, calls = fit(tmp_path, monkeypatch, [])
    assert calls == list(range(1, BATCHES + 1))  # one trainer (STDP), one update per batch
    assert Counter(type(c) for c in trainer.callbacks)[ApplyUpdates] == 1
    assert watch.pending == [False] * (BATCHES + 1)
    for before, after in zip(watch.states, watch.states[1:]):
        assert not torch.equal(before["weight"], after["weight"])
        assert not torch.equal(before["theta"], after["theta"])


@pytest.mark.parametrize("cls", [ApplyUpdates, MyApplyUpdates])
def test_every_n_batches_and_the_user_instance_replaces_the_default(tmp_path, monkeypatch, cls):
    mine = cls(every_n_batches=3)
    trainer, watch, calls = fit(tmp_path, monkeypatch, [mine])
    applies = [c for c in trainer.callbacks if isinstance(c, ApplyUpdates)]
    assert applies == [mine]  # the default one from configure_callbacks was not added
    assert Counter(type(c) for c in trainer.callbacks)[MonitorMode] == 1
    assert Counter(type(c) for c in trainer.callbacks)[LogMonitors] == 1
    assert calls == [3, 6]
    # terms wait between applies; weights and thresholds change only at batches 3 and 6
    assert watch.pending == [False, True, True, False, True, True, False, True]
    for batch in range(1, BATCHES + 1):
        before, after = watch.states[batch - 1], watch.states[batch]
        applied = batch in (3, 6)
        assert (not torch.equal(before["weight"], after["weight"])) == applied, batch
        assert (not torch.equal(before["theta"], after["theta"])) == applied, batch
    assert mine.state_dict() == {
        "every_n_batches": 3,
        "batches_pending": 1,
        "samples_pending": BATCH_SIZE,
    }


def test_applying_every_three_batches_applies_the_sum_of_their_terms(tmp_path, monkeypatch):
    """The update applied after three batches is the sum of the three batches' terms (with
    unbounded weights and no hooks the change is exactly pos - neg)."""
    mine = ApplyUpdates(every_n_batches=3)
    sums = []

    class Peek(L.Callback):  # before ApplyUpdates: the pending sums it is about to apply
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            update = pl_module.network.connections["input_exc"].updater.weight
            sums.append((update.pos - update.neg).clone())

    watch = Watch()
    L.seed_everything(0, verbose=False)
    model = tiny_model()
    weight_update = model.network.connections["input_exc"].updater.weight
    weight_update.constraints.clear()  # no Normalize
    weight_update.bound = Unbounded()
    start = model.network.connections["input_exc"].weight.detach().clone()
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=3, callbacks=[Peek(), mine, watch]
    )
    trainer.fit(model, DigitsDataModule(batch_size=BATCH_SIZE, shuffle=False))
    assert watch.pending == [False, True, True, False]
    torch.testing.assert_close(watch.states[3]["weight"] - start, sums[2])
    assert not torch.equal(sums[0], sums[2])  # the terms accumulated over the three batches


def test_every_n_batches_must_be_a_positive_int():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="every_n_batches must be an int >= 1"):
            ApplyUpdates(every_n_batches=bad)
    for bad in (0, 2.0):
        with pytest.raises(ValueError, match="every_n_batches must be an int >= 1"):
            LogMonitors(every_n_batches=bad)


def test_state_dict_round_trip():
    a = ApplyUpdates(every_n_batches=4)
    a.batches_pending, a.samples_pending = 2, 9
    b = ApplyUpdates(every_n_batches=4)
    b.load_state_dict(a.state_dict())
    assert (
        b.state_dict()
        == a.state_dict()
        == {
            "every_n_batches": 4,
            "batches_pending": 2,
            "samples_pending": 9,
        }
    )
