"""Checkpoints: resuming gives what an uninterrupted fit gives; callback state round-trips."""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning_helpers import (
    QUIET,
    assert_states_close,
    learned_state,
    quiet_trainer,
    tiny_model,
)

from celltrain.callbacks import ApplyUpdates, LogMonitors
from celltrain.lightning import DigitsDataModule

pytestmark = QUIET
BATCHES = 4  # per epoch; with every_n_batches=3 one batch is pending at the end of epoch 1
BATCH_SIZE = 3


def model_for(seed):
    L.seed_everything(seed, verbose=False)
    model = tiny_model()
    model.reset_readout_each_epoch = False  # so the readout carries over the epoch boundary
    return model


def pending_sums(model):
    network = model.network
    return {
        "weight_pos": network.connections["input_exc"].updater.weight.pos.clone(),
        "weight_neg": network.connections["input_exc"].updater.weight.neg.clone(),
        "theta_pos": network.neurons["exc"].updater.theta.pos.clone(),
        "theta_neg": network.neurons["exc"].updater.theta.neg.clone(),
    }


class RestoredState(L.Callback):
    """Snapshot the ApplyUpdates state when training starts (after a checkpoint is restored)."""

    def __init__(self, apply):
        self.apply = apply
        self.at_start = None

    def on_train_start(self, trainer, pl_module):
        self.at_start = self.apply.state_dict()


def fit(root, model, max_epochs, ckpt_path=None, checkpoint=None):
    apply = ApplyUpdates(every_n_batches=3)
    log = LogMonitors(every_n_batches=2)
    restored = RestoredState(apply)
    callbacks = [apply, log, restored] + ([checkpoint] if checkpoint else [])
    trainer = quiet_trainer(
        root,
        max_epochs=max_epochs,
        limit_train_batches=BATCHES,
        limit_val_batches=1,
        enable_checkpointing=checkpoint is not None,
        callbacks=callbacks,
    )
    data = DigitsDataModule(batch_size=BATCH_SIZE, shuffle=True, seed=3)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return trainer, apply, restored


def test_resuming_equals_an_uninterrupted_fit(tmp_path):
    whole = model_for(0)
    _, whole_apply, _ = fit(tmp_path / "whole", whole, max_epochs=2)

    first = model_for(0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)
    _, first_apply, _ = fit(tmp_path / "first", first, max_epochs=1, checkpoint=checkpoint)
    (path,) = (tmp_path / "ckpt").iterdir()
    saved = torch.load(path, weights_only=False)
    # every callback's state is in the checkpoint, as it was at the end of epoch 1
    assert saved["callbacks"]["ApplyUpdates"] == {
        "every_n_batches": 3,
        "batches_pending": 1,
        "samples_pending": BATCH_SIZE,
    }
    assert saved["callbacks"]["ApplyUpdates"] == first_apply.state_dict()
    assert saved["callbacks"]["LogMonitors"] == {"every_n_batches": 2}
    assert saved["global_step"] == BATCHES
    assert any(pending_sums(first)[k].any() for k in pending_sums(first))  # pending at save

    resumed = model_for(1)  # other initial weights: the checkpoint must restore them
    assert not torch.equal(learned_state(resumed)["weight"], learned_state(first)["weight"])
    trainer, apply, restored = fit(tmp_path / "resumed", resumed, max_epochs=2, ckpt_path=path)
    assert restored.at_start == saved["callbacks"]["ApplyUpdates"]  # loaded into the callback
    assert trainer.global_step == 2 * BATCHES

    assert_states_close(learned_state(resumed), learned_state(whole), atol=1e-6, what="resumed")
    assert_states_close(pending_sums(resumed), pending_sums(whole), atol=1e-6, what="pending")
    assert apply.state_dict() == whole_apply.state_dict()
    assert apply.state_dict()["batches_pending"] == 2  # 8 batches, applied after 3 and 6
    # the readout accumulated both epochs (it was restored, not restarted)
    assert float(resumed.readout.class_samples.sum()) == 2 * BATCHES * BATCH_SIZE
    # and the second epoch did learn something
    assert not torch.equal(learned_state(resumed)["weight"], learned_state(first)["weight"])
