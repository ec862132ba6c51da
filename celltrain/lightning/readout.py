"""Label assignment readout of Diehl & Cook (2015), as a torchmetrics ``Metric``."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class RateReadout(Metric):
    """Assign each output neuron the class it fires most for; predict by mean rate per class.

    ``update(counts, labels)`` accumulates, per neuron and class, the spike counts of training
    samples and the number of samples per class, in ``add_state(..., dist_reduce_fx="sum")``
    states: summing them over processes gives exactly the single-process totals, and they are
    saved in checkpoints. :meth:`compute` returns the assignment (``(neurons,)`` long): the class
    with the highest mean count per sample of that class (a neuron that never fired, or before
    any update, gets class ``-1``). :meth:`predict` scores each class by the mean count of the
    neurons assigned to it and returns the best class per sample (classes without neurons score
    ``-inf``; if no neuron is assigned at all every prediction is class 0).

    Args:
        neurons: number of output neurons (the counts' last dimension after flattening).
        num_classes: number of classes.

    Example::

        >>> readout = RateReadout(neurons=2, num_classes=2)
        >>> readout.update(torch.tensor([[5, 0], [0, 3]]), torch.tensor([0, 1]))
        >>> readout.compute(), readout.predict(torch.tensor([[4, 1]]))
        (tensor([0, 1]), tensor([0]))
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, neurons: int, num_classes: int) -> None:
        super().__init__()
        for name, value in (("neurons", neurons), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.neurons = neurons
        self.num_classes = num_classes
        self.add_state(
            "class_counts",
            torch.zeros(neurons, num_classes, dtype=torch.float64),
            dist_reduce_fx="sum",
            persistent=True,
        )
        self.add_state(
            "class_samples",
            torch.zeros(num_classes, dtype=torch.float64),
            dist_reduce_fx="sum",
            persistent=True,
        )

    def _flat_counts(self, counts: torch.Tensor) -> torch.Tensor:
        flat = counts.reshape(counts.shape[0], -1) if counts.dim() > 1 else counts
        if flat.dim() != 2 or flat.shape[1] != self.neurons:
            raise ValueError(
                f"counts must have shape (batch, {self.neurons}) (or (batch, *shape) with "
                f"{self.neurons} neurons), got {tuple(counts.shape)}"
            )
        return flat

    def update(self, counts: torch.Tensor, labels: torch.Tensor) -> None:
        """Accumulate training spike ``counts`` ``(B, neurons)`` with ``labels`` ``(B,)``.

        Raises:
            ValueError: shapes do not match, or a label is outside ``[0, num_classes)``.
        """
        flat = self._flat_counts(counts)
        self.check_labels(labels, flat.shape[0])
        onehot = torch.nn.functional.one_hot(labels.long(), self.num_classes).to(torch.float64)
        self.class_counts += flat.to(torch.float64).t() @ onehot
        self.class_samples += onehot.sum(0)

    def check_labels(self, labels: torch.Tensor, batch: int) -> None:
        """Check ``labels``: an integer tensor ``(batch,)`` of classes in ``[0, num_classes)``.

        Raises:
            ValueError: another shape or dtype, or a label outside ``[0, num_classes)``.
        """
        if labels.shape != (batch,) or labels.is_floating_point():
            raise ValueError(
                f"labels must be an integer tensor of shape ({batch},), "
                f"got {tuple(labels.shape)} {labels.dtype}"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), got values from "
                f"{int(labels.min())} to {int(labels.max())}"
            )

    def compute(self) -> torch.Tensor:
        """The class assigned to each neuron, ``(neurons,)`` long (``-1``: unassigned)."""
        mean = self.class_counts / self.class_samples.clamp_min(1.0)
        best = mean.argmax(dim=1)
        return torch.where(mean.amax(dim=1) > 0, best, torch.full_like(best, -1))

    def predict(self, counts: torch.Tensor, assignment: torch.Tensor | None = None) -> torch.Tensor:
        """Predict classes ``(B,)`` from spike ``counts`` ``(B, neurons)``.

        Args:
            counts: spike counts of the samples to classify.
            assignment: a precomputed :meth:`compute` result (saves the cross-process sync).
        """
        flat = self._flat_counts(counts).to(torch.float64)
        assigned = self.compute() if assignment is None else assignment
        onehot = torch.nn.functional.one_hot(assigned.clamp_min(0), self.num_classes)
        onehot = onehot.to(torch.float64) * (assigned >= 0).unsqueeze(1)
        per_class = onehot.sum(0)
        scores = (flat @ onehot) / per_class.clamp_min(1.0)
        scores = torch.where(per_class > 0, scores, torch.full_like(scores, float("-inf")))
        return scores.argmax(dim=1)
