"""FiringRate: the mean rate over every sample equals a brute-force count of spikes."""

import pytest
import torch

from celltrain.lightning.rates import FiringRate


@pytest.mark.parametrize("seed", range(4))
def test_rate_is_all_spikes_over_all_neuron_seconds(seed):
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(int(n) for n in torch.randint(1, 6, (int(torch.randint(1, 3, ())),)))
    rate = FiringRate()
    spikes, neuron_seconds = 0, 0.0
    for _ in range(int(torch.randint(1, 5, (), generator=generator))):
        batch = int(torch.randint(1, 7, (), generator=generator))
        counts = torch.randint(0, 30, (batch, *shape), generator=generator, dtype=torch.int32)
        seconds = 0.25
        rate.update(counts, seconds)
        for value in counts.flatten().tolist():  # one neuron of one sample at a time
            spikes += value
            neuron_seconds += seconds
    assert float(rate.compute()) == pytest.approx(spikes / neuron_seconds, rel=1e-12)


def test_unequal_batches_weigh_by_samples_not_by_batches():
    rate = FiringRate()
    rate.update(torch.full((3, 2), 5), 0.5)  # 10 Hz, 3 samples
    rate.update(torch.zeros(1, 2, dtype=torch.int64), 0.5)  # 0 Hz, 1 sample
    assert float(rate.compute()) == pytest.approx(7.5)  # not (10 + 0) / 2


def test_reset_forgets_and_states_are_saved():
    rate = FiringRate()
    rate.update(torch.ones(2, 4, dtype=torch.bool), 0.25)
    assert float(rate.compute()) == pytest.approx(4.0)
    assert set(rate.state_dict()) == {"spikes", "neuron_seconds"}
    rate.reset()
    rate.update(torch.zeros(2, 4, dtype=torch.bool), 0.25)
    assert float(rate.compute()) == 0.0


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_seconds_raise(seconds):
    with pytest.raises(ValueError, match=r"seconds must be a finite number > 0, got"):
        FiringRate().update(torch.ones(1, 2, dtype=torch.int32), seconds)


def test_float_counts_raise():
    with pytest.raises(ValueError, match=r"counts must be an integer or bool tensor, got"):
        FiringRate().update(torch.ones(1, 2), 1.0)
