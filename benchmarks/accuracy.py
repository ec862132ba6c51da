"""Accuracy of unsupervised STDP (Diehl & Cook) on the scikit-learn digits.

Runs the setup of a config file (default ``examples/digits_stdp.yaml``, the same one
``celltrain fit --config examples/digits_stdp.yaml`` runs), then tests it on the fixed test
split, and prints test accuracy, validation accuracy, epochs and wall time; then, as the
reference the issue names, k-means with as many clusters as excitatory neurons plus the same
label-assignment readout (each cluster takes the majority class of its training samples).

    python benchmarks/accuracy.py [--config FILE] [extra celltrain options ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from celltrain.lightning.cli import make_cli

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "examples" / "digits_stdp.yaml"))
    known, extra = parser.parse_known_args()
    cli = make_cli(["--config", known.config, *extra], run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    fit_seconds = time.perf_counter() - start
    val = float(cli.trainer.callback_metrics.get("val/accuracy", float("nan")))
    result = cli.trainer.test(cli.model, cli.datamodule, verbose=False)[0]
    total = time.perf_counter() - start
    print(f"config: {known.config} {' '.join(extra)}")
    print(f"epochs: {cli.trainer.current_epoch}  fit: {fit_seconds:.0f} s  fit+test: {total:.0f} s")
    print(f"validation accuracy: {val:.3f}  test accuracy: {result['test/accuracy']:.3f}")
    clusters = cli.model.readout.neurons
    print(
        f"reference, k-means ({clusters} clusters) + label assignment: "
        f"test accuracy {kmeans_accuracy(cli.datamodule, clusters):.3f}"
    )


def kmeans_accuracy(datamodule, clusters: int, seed: int = 0) -> float:
    """Test accuracy of k-means on the training split with majority-class cluster labels."""
    datamodule.setup()
    train, test = datamodule.splits["train"], datamodule.splits["test"]
    model = KMeans(clusters, n_init=10, random_state=seed).fit(train.x.numpy())
    labels = train.y.numpy()
    assigned = np.array(
        [
            np.bincount(labels[model.labels_ == k], minlength=10).argmax()
            if (model.labels_ == k).any()
            else -1
            for k in range(clusters)
        ]
    )
    predicted = assigned[model.predict(test.x.numpy())]
    return float((predicted == test.y.numpy()).mean())


if __name__ == "__main__":
    main()
