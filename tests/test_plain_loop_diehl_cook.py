"""A plain loop (no Lightning Trainer) trains a Diehl & Cook network on the digits with STDP,
and the input weights specialise: receptive fields come to resemble digit class means."""

import torch
from sklearn.datasets import load_digits

from celltrain.learn import STDP
from celltrain.neural import PoissonEncoder, diehl_cook_layer


def specialisation(weight: torch.Tensor, class_means: torch.Tensor) -> float:
    """Mean over neurons of the best Pearson correlation of a receptive field with a class
    mean image."""
    fields = weight - weight.mean(1, keepdim=True)
    means = class_means - class_means.mean(1, keepdim=True)
    fields = fields / fields.norm(dim=1, keepdim=True).clamp_min(1e-12)
    means = means / means.norm(dim=1, keepdim=True)
    return float((fields @ means.t()).amax(1).mean())


def test_receptive_fields_specialise_in_a_plain_loop():
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:320] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:320])
    class_means = torch.stack([x[y == c].mean(0) for c in range(10)])

    layer = diehl_cook_layer(inputs=64, neurons=20)
    layer.neurons["exc"].batch_reduction = "sum"
    stdp = STDP(lr_post=1e-2, lr_pre=-1e-4, batch_reduction="sum")
    stdp.register_cell("input_exc", layer.cell("input_exc"))
    encoder = PoissonEncoder(steps=100, dt=layer.dt, seed=1)
    weight = layer.connections["input_exc"].weight
    before = specialisation(weight, class_means)

    batch = 16
    for start in range(0, x.shape[0], batch):
        index = torch.arange(start, start + batch)
        spikes = encoder(x[index] * 63.75, index)
        layer.reset()
        stdp.clear()
        for step in range(spikes.shape[0]):
            layer(input=spikes[step])
            stdp()
        stdp.update()
    after = specialisation(weight, class_means)

    assert before < 0.45
    assert after > before + 0.3, (before, after)
    # the learned thresholds moved through the same update() as the weights
    assert float(layer.neurons["exc"].theta.sum()) > 0
