"""RateReadout (the label-assignment readout of SpikingModule) against brute force."""

import numpy as np
import pytest
import torch

from celltrain.lightning import RateReadout

pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method of metric RateReadout")
NEURONS, CLASSES = 7, 4


def brute_force_assignment(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each neuron, the class with the highest mean count per sample of that class;
    -1 if its best mean is 0 (never fired on a labelled sample)."""
    assignment = np.full(counts.shape[1], -1)
    for neuron in range(counts.shape[1]):
        best, best_mean = -1, 0.0
        for c in range(CLASSES):
            samples = labels == c
            if not samples.any():
                continue
            mean = counts[samples, neuron].sum() / samples.sum()
            if mean > best_mean:  # strictly greater: ties go to the lower class
                best, best_mean = c, mean
        assignment[neuron] = best
    return assignment


def brute_force_predict(counts: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Per sample, the class whose assigned neurons have the highest mean count."""
    predictions = []
    for sample in counts:
        best, best_score = 0, -np.inf
        for c in range(CLASSES):
            neurons = assignment == c
            if not neurons.any():
                continue
            score = sample[neurons].mean()
            if score > best_score:
                best, best_score = c, score
        predictions.append(best)
    return np.array(predictions)


@pytest.mark.parametrize("seed", range(5))
def test_assignment_and_prediction_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, (60, NEURONS))
    counts[:, 3] = 0  # a silent neuron stays unassigned
    labels = rng.integers(0, CLASSES - 1, 60)  # the last class never occurs
    readout = RateReadout(NEURONS, CLASSES)
    for chunk in np.array_split(np.arange(60), 3):  # several updates accumulate
        readout.update(torch.tensor(counts[chunk]), torch.tensor(labels[chunk]))
    expected = brute_force_assignment(counts, labels)
    assignment = readout.compute()
    assert assignment.dtype == torch.long
    np.testing.assert_array_equal(assignment.numpy(), expected)
    assert expected[3] == -1

    test_counts = rng.integers(0, 50, (25, NEURONS))
    expected_predictions = brute_force_predict(test_counts, expected)
    predictions = readout.predict(torch.tensor(test_counts))
    np.testing.assert_array_equal(predictions.numpy(), expected_predictions)
    # the same with a precomputed assignment, and with (batch, *shape) counts
    shaped = torch.tensor(test_counts).reshape(25, 1, NEURONS)
    np.testing.assert_array_equal(readout.predict(shaped, assignment).numpy(), expected_predictions)


def test_nothing_assigned_predicts_class_zero():
    readout = RateReadout(NEURONS, CLASSES)
    assert readout.compute().tolist() == [-1] * NEURONS
    predictions = readout.predict(torch.ones(3, NEURONS))
    assert predictions.tolist() == [0, 0, 0]


def test_states_are_in_the_state_dict_and_reset():
    readout = RateReadout(NEURONS, CLASSES)
    readout.update(torch.ones(2, NEURONS, dtype=torch.int32), torch.tensor([1, 1]))
    state = readout.state_dict()
    assert set(state) == {"class_counts", "class_samples"}
    assert state["class_samples"].tolist() == [0, 2, 0, 0]
    assert state["class_counts"][:, 1].tolist() == [2] * NEURONS
    other = RateReadout(NEURONS, CLASSES)
    other.load_state_dict(state)
    assert torch.equal(other.compute(), readout.compute())
    readout.reset()
    assert float(readout.class_counts.sum()) == 0 and float(readout.class_samples.sum()) == 0


def test_bad_labels_and_shapes_raise():
    readout = RateReadout(NEURONS, CLASSES)
    counts = torch.ones(2, NEURONS)
    for labels in (torch.tensor([0, CLASSES]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
            readout.update(counts, labels)
    with pytest.raises(ValueError, match="integer tensor of shape"):
        readout.update(counts, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        readout.update(counts, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"counts must have shape \(batch, 7\)"):
        readout.update(torch.ones(2, NEURONS + 1), torch.tensor([0, 1]))
    assert float(readout.class_samples.sum()) == 0  # nothing was accumulated
    with pytest.raises(ValueError, match="neurons must be an int >= 1"):
        RateReadout(0, CLASSES)
