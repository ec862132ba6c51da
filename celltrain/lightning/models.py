"""Ready-made networks."""

from __future__ import annotations

from celltrain.learn import STDP
from celltrain.lightning.module import SpikingModule
from celltrain.neural import PoissonEncoder, diehl_cook_layer


class DiehlCook(SpikingModule):
    """Diehl & Cook (2015): unsupervised STDP on the input weights of adaptive-threshold
    excitatory neurons with lateral inhibition, and a label-assignment readout.

    Args:
        inputs: input size (64 for the digits).
        neurons: excitatory (= inhibitory) neurons.
        steps: time steps per sample.
        dt: time step (ms).
        max_rate: input rate of intensity 1 (Hz).
        lr_post: STDP potentiation at post spikes.
        lr_pre: STDP rate at pre spikes (negative: depression).
        tau_trace: STDP trace time constant (ms).
        weight_total: sum of each excitatory neuron's input weights.
        theta_plus: threshold increase per spike (mV).
        exc_inh_weight: excitatory -> inhibitory voltage jump (mV).
        inh_exc_weight: inhibitory -> excitatory voltage drop (mV).
        num_classes: classes of the readout.
        seed: encoder seed.
        batch_reduction: STDP and theta reduction over the batch.

    Defaults are tuned for the 64-input digits (the sweeps are in examples/README.md):
    ``"sum"`` over the batch so each sample teaches as much as at batch size 1, 127.5 Hz input
    so the 64 inputs drive the neurons about as MNIST's 784 do at 63.75 Hz, and
    ``theta_plus=0.2`` mV, four times the paper's, since 1,257 samples give each neuron far
    fewer spikes to adapt its threshold with than MNIST's 60,000.

    Example::

        >>> model = DiehlCook(inputs=64, neurons=10, steps=20)
        >>> sorted(model.network.neurons), list(model.trainers)
        (['exc', 'inh'], ['stdp'])
    """

    def __init__(
        self,
        inputs: int = 64,
        neurons: int = 100,
        steps: int = 250,
        dt: float = 1.0,
        max_rate: float = 127.5,
        lr_post: float = 1e-2,
        lr_pre: float = -1e-4,
        tau_trace: float = 20.0,
        weight_total: float = 20.0,
        theta_plus: float = 0.2,
        exc_inh_weight: float = 22.5,
        inh_exc_weight: float = 120.0,
        num_classes: int = 10,
        seed: int = 0,
        batch_reduction: str = "sum",
    ) -> None:
        network = diehl_cook_layer(
            inputs,
            neurons,
            dt,
            weight_total=weight_total,
            exc_inh_weight=exc_inh_weight,
            inh_exc_weight=inh_exc_weight,
            theta_plus=theta_plus,
        )
        network.neurons["exc"].batch_reduction = batch_reduction
        stdp = STDP(
            lr_post=lr_post,
            lr_pre=lr_pre,
            tau_pre=tau_trace,
            tau_post=tau_trace,
            batch_reduction=batch_reduction,
        )
        stdp.register_cell("input_exc", network.cell("input_exc"))
        super().__init__(
            network,
            {"stdp": stdp},
            PoissonEncoder(steps, dt=dt, seed=seed),
            output="exc",
            num_classes=num_classes,
            max_rate=max_rate,
        )
        self.save_hyperparameters()
