"""The ``celltrain`` command line.

Until the Lightning command line lands, ``celltrain fit`` runs a short plain-loop simulation
of a Diehl & Cook-style layer on the scikit-learn digits and prints firing rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def demo(samples: int = 32, steps: int = 100) -> dict[str, float]:
    """Simulate ``samples`` digits for ``steps`` 1-ms steps; return mean rates (Hz) per neuron
    population."""
    import torch
    from sklearn.datasets import load_digits

    from celltrain.neural import ALIF, LIF, Direct, Lateral, Layer, Linear, PoissonEncoder

    torch.manual_seed(0)
    digits = load_digits()
    images = torch.tensor(digits.data[:samples], dtype=torch.get_default_dtype())
    rates = images / 16.0 * 63.75
    layer = Layer(
        neurons={"exc": ALIF(100, tau_membrane=100.0), "inh": LIF(100, tau_membrane=10.0)},
        connections={
            "input_exc": ("input", "exc", Linear(64, 100, weight_range=(0.0, 30.0))),
            "exc_inh": ("exc", "inh", Direct(100, weight_range=(2000.0, 2000.0))),
            "inh_exc": ("inh", "exc", Lateral(100, weight_range=(-500.0, -500.0))),
        },
    )
    encoder = PoissonEncoder(steps, dt=layer.dt)
    spikes = encoder(rates, torch.arange(samples))
    counts = {name: 0.0 for name in layer.neurons}
    for t in range(steps):
        for name, out in layer(input=spikes[t]).items():
            counts[name] += float(out.float().sum())
    seconds = samples * steps * layer.dt / 1000.0
    return {name: count / (seconds * layer.neurons[name].size) for name, count in counts.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``celltrain`` console script."""
    parser = argparse.ArgumentParser(prog="celltrain", description=__doc__)
    parser.add_argument("command", choices=["fit"], help="what to run")
    args = parser.parse_args(argv)
    if args.command == "fit":
        start = time.perf_counter()
        rates = demo()
        took = time.perf_counter() - start
        print(
            f"simulated 32 digits x 100 ms in {took:.2f} s; mean rates (Hz): "
            + ", ".join(f"{k}={v:.1f}" for k, v in rates.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
