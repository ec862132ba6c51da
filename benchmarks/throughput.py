"""Throughput of the Diehl & Cook (2015) network: celltrain vs a hand-written PyTorch loop.

Three ways to train the same network (100 excitatory ALIF + 100 inhibitory LIF neurons, STDP on
the input weights, 250 steps of 1 ms per sample, Poisson input at up to 63.75 Hz):

- ``plain``: celltrain's modules in a plain loop (``diehl_cook_layer`` + ``STDP`` +
  ``PoissonEncoder``, ``update()`` after each batch), as in the README;
- ``fit``: ``Trainer.fit`` on ``DiehlCook`` with the same settings (no logger, progress bar,
  checkpointing, model summary or validation);
- ``reference``: the same dynamics written directly in PyTorch with no celltrain code.

Inputs: 64 (the scikit-learn digits, intensities ``x / 16``) and 784 (uniform random
intensities, ``weight_total = 78`` as in the paper's MNIST network). Batch sizes 1, 16, 32.

Each round times the reference and the plain loop in one Python process, alternating batch by
batch on the same inputs (so both see the same state of a shared machine), after one warm-up
batch each; then ``Trainer.fit`` in a process of its own. Samples per second are medians over
``--repeats`` rounds. For ``fit`` the clock runs from the start of the first timed batch to the
end of the last one (the Trainer's one-off setup is reported separately as ``fit setup s``).
Peak resident memory comes from one short run of each method in a process of its own (imports
+ the configuration).

Usage: ``python benchmarks/throughput.py [--quick] [--threads N] [--check] [--no-profile]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

STEPS = 250
DT = 1.0
NEURONS = 100
MAX_RATE = 63.75
LR_POST, LR_PRE, TAU_TRACE = 1e-2, -1e-4, 20.0
BATCHES = (1, 16, 32)
INPUTS = (64, 784)
METHODS = ("plain", "fit", "reference")


def weight_total(inputs: int) -> float:
    return 20.0 if inputs == 64 else 78.0


def data(inputs: int, samples: int) -> torch.Tensor:
    """Intensities in [0, 1], ``(samples, inputs)``."""
    generator = torch.Generator().manual_seed(0)
    if inputs == 64:
        try:
            from sklearn.datasets import load_digits

            digits = torch.as_tensor(load_digits().data, dtype=torch.float32) / 16.0
            return digits[torch.arange(samples) % digits.shape[0]]
        except ImportError:  # pragma: no cover - scikit-learn ships with the test extras
            pass
    return torch.rand(samples, inputs, generator=generator)


# ---------------------------------------------------------------------------------------------
# (c) the reference: plain PyTorch, no celltrain
# ---------------------------------------------------------------------------------------------
class Reference:
    """Diehl & Cook dynamics in the fewest tensor operations, mirroring celltrain's models.py.

    Excitatory: rest -65, reset -60, threshold -52 + adaptation, refractory 5, tau 100 mV/ms.
    Inhibitory: rest -60, reset -45, threshold -40, refractory 2, tau 10. Exact exponential
    voltage update ``v <- rest + (v - rest) e^(-dt/tau) + R (1 - e^(-dt/tau)) I`` with
    ``R = 1 / (1 - e^(-dt/tau))`` (models.voltage_resistance), so ``R (1 - e^(-dt/tau)) = 1``
    and the current enters unscaled. Recurrent currents read the previous step's spikes.
    STDP: unit traces, one ``addmm_`` per term per step into a pending ``dW``; at batch end
    ``W <- clamp(W + dW, 0, 1)`` then each row scaled to ``weight_total``; theta becomes the
    batch mean of the per-sample adaptation (celltrain's batch-mean rule).
    """

    def __init__(self, inputs: int, neurons: int = NEURONS, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.total = weight_total(inputs)
        w = torch.rand(neurons, inputs, generator=generator) * 0.3
        self.w = w * (self.total / w.sum(1, keepdim=True))
        self.w_lat_t = (-120.0 * (1.0 - torch.eye(neurons))).t().contiguous()
        self.theta = torch.zeros(neurons)
        self.de = math.exp(-DT / 100.0)
        self.di = math.exp(-DT / 10.0)
        self.dtheta = math.exp(-DT / 1e7)
        self.dtrace = math.exp(-DT / TAU_TRACE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.rand(STEPS, *x.shape) < x * (MAX_RATE * DT / 1000.0)).float()

    @torch.no_grad()
    def batch(self, spikes: torch.Tensor) -> None:
        """Train on one batch of input spikes ``(steps, B, inputs)`` (float 0/1)."""
        steps, B, _ = spikes.shape
        N = self.w.shape[0]
        w_t = self.w.t()
        ve = torch.full((B, N), -65.0)
        vi = torch.full((B, N), -60.0)
        re = torch.zeros(B, N)
        ri = torch.zeros(B, N)
        adapt = self.theta.expand(B, N).clone()
        se = torch.zeros(B, N)
        si = torch.zeros(B, N)
        x_pre = torch.zeros(B, spikes.shape[2])
        x_post = torch.zeros(B, N)
        dw = torch.zeros_like(self.w)
        a_post, a_pre = LR_POST / B, LR_PRE / B
        for t in range(steps):
            s = spikes[t]
            current_e = torch.addmm(s @ w_t, si, self.w_lat_t)
            # excitatory (ALIF)
            held = re > 1e-3
            v = torch.where(held, ve, (ve + 65.0).mul_(self.de).add_(current_e).sub_(65.0))
            adapt = adapt.mul_(self.dtheta)  # the threshold decays before the comparison
            fire_e = (v >= adapt - 52.0) & ~held
            ve = v.masked_fill_(fire_e, -60.0)
            re = (re - DT).clamp_min_(0.0).masked_fill_(fire_e, 5.0)
            new_se = fire_e.float()
            adapt = adapt.add_(new_se, alpha=0.05)
            # inhibitory (LIF), driven by the previous step's excitatory spikes
            held = ri > 1e-3
            v = torch.where(held, vi, (vi + 60.0).mul_(self.di).add_(se, alpha=22.5).sub_(60.0))
            fire_i = (v >= -40.0) & ~held
            vi = v.masked_fill_(fire_i, -45.0)
            ri = (ri - DT).clamp_min_(0.0).masked_fill_(fire_i, 2.0)
            se, si = new_se, fire_i.float()
            # STDP
            x_pre.mul_(self.dtrace).add_(s)
            x_post.mul_(self.dtrace).add_(se)
            dw.addmm_(se.t(), x_pre, alpha=a_post).addmm_(x_post.t(), s, alpha=a_pre)
        self.w = (self.w + dw).clamp_(0.0, 1.0)
        self.w.mul_(self.total / self.w.sum(1, keepdim=True))
        self.theta = adapt.mean(0)


# ---------------------------------------------------------------------------------------------
# (a), (b) celltrain
# ---------------------------------------------------------------------------------------------
def plain_setup(inputs: int):  # noqa: ANN201
    from celltrain.learn import STDP
    from celltrain.neural import PoissonEncoder, diehl_cook_layer

    layer = diehl_cook_layer(inputs, NEURONS, DT, weight_total=weight_total(inputs))
    stdp = STDP(lr_post=LR_POST, lr_pre=LR_PRE, tau_pre=TAU_TRACE, tau_post=TAU_TRACE)
    stdp.register_cell("input_exc", layer.cell("input_exc"))
    encoder = PoissonEncoder(STEPS, dt=DT, seed=0)

    def run_batch(x: torch.Tensor, index: torch.Tensor) -> None:
        layer.reset()
        stdp.clear()
        layer.run(input=encoder(x * MAX_RATE, index))  # all 250 steps, then one STDP call
        stdp()
        stdp.update()

    return layer, stdp, encoder, run_batch


def settle() -> None:
    """Collect garbage before the clock starts, in every method alike.

    After ``import lightning`` the interpreter tracks about 400,000 objects; the first full
    (generation 2) collection, which comes a few batches into a run, walks all of them (about
    0.2 s on our machine) and later ones are rare. Inside a timed window of a few batches that
    one-off would decide the figure, so each method starts its clock after ``gc.collect()``.
    """
    gc.collect()


def time_plain(inputs: int, batch: int, batches: int, repeats: int) -> list[float]:
    *_, run_batch = plain_setup(inputs)
    x = data(inputs, batch * (batches * repeats + 1))
    run_batch(x[:batch], torch.arange(batch))  # warm-up
    settle()
    rates, start_row = [], batch
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            rows = torch.arange(start_row, start_row + batch)
            run_batch(x[rows], rows)
            start_row += batch
        rates.append(batches * batch / (time.perf_counter() - t0))
    return rates


def time_reference(inputs: int, batch: int, batches: int, repeats: int) -> list[float]:
    torch.manual_seed(0)
    reference = Reference(inputs)
    x = data(inputs, batch * (batches * repeats + 1))
    reference.batch(reference.encode(x[:batch]))  # warm-up
    settle()
    rates, start_row = [], batch
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            reference.batch(reference.encode(x[start_row : start_row + batch]))
            start_row += batch
        rates.append(batches * batch / (time.perf_counter() - t0))
    return rates


def time_pair(inputs: int, batch: int, batches: int) -> tuple[float, float]:
    """Samples per second of the reference and of the plain loop, timed in one process with
    their batches alternating (reference, plain, reference, ...) on the same inputs, so both
    see the same state of the machine. Returns ``(reference, plain)``."""
    torch.manual_seed(0)
    reference = Reference(inputs)
    *_, run_batch = plain_setup(inputs)
    x = data(inputs, batch * (batches + 1))
    reference.batch(reference.encode(x[:batch]))  # warm-up
    run_batch(x[:batch], torch.arange(batch))
    settle()
    seconds = {"reference": 0.0, "plain": 0.0}
    for b in range(1, batches + 1):
        rows = torch.arange(b * batch, (b + 1) * batch)
        t0 = time.perf_counter()
        reference.batch(reference.encode(x[rows]))
        t1 = time.perf_counter()
        run_batch(x[rows], rows)
        t2 = time.perf_counter()
        seconds["reference"] += t1 - t0
        seconds["plain"] += t2 - t1
    return batches * batch / seconds["reference"], batches * batch / seconds["plain"]


def time_fit(inputs: int, batch: int, batches: int, repeats: int) -> tuple[list[float], float]:
    import warnings

    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from celltrain.lightning import DiehlCook

    warnings.filterwarnings("ignore")
    x = data(inputs, batch * (batches + 1))
    y = torch.zeros(x.shape[0], dtype=torch.long)
    loader = DataLoader(TensorDataset(x, y, torch.arange(x.shape[0])), batch_size=batch)

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch_, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == 1:  # batch 0 is the warm-up
                gc.collect()  # see settle()
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx) -> None:  # noqa: ANN001
            self.end = time.perf_counter()

    rates, setups = [], []
    for _ in range(repeats):
        model = DiehlCook(
            inputs=inputs,
            neurons=NEURONS,
            steps=STEPS,
            dt=DT,
            max_rate=MAX_RATE,
            lr_post=LR_POST,
            lr_pre=LR_PRE,
            tau_trace=TAU_TRACE,
            weight_total=weight_total(inputs),
        )
        clock = Clock()
        trainer = L.Trainer(
            max_epochs=1,
            limit_train_batches=batches + 1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
            callbacks=[clock],
        )
        t0 = time.perf_counter()
        trainer.fit(model, loader)
        total = time.perf_counter() - t0
        rates.append(batches * batch / (clock.end - clock.start))
        setups.append(total - (clock.end - clock.start))
    return rates, statistics.median(setups)


def peak_resident_mb() -> float:
    """Peak resident set of this process in MB.

    On Linux ``getrusage(RUSAGE_SELF).ru_maxrss`` of a freshly started process keeps the high
    water mark of the parent it was forked from (the kernel carries it across ``exec``), so a
    worker started by a 400 MB parent would report at least 400 MB. ``VmHWM`` in
    ``/proc/self/status`` is the same peak for this process's own memory map only; it is used
    where available, ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method: str, inputs: int, batch: int, batches: int, repeats: int) -> dict:
    extra: dict = {}
    if method == "pair":
        reference, plain = time_pair(inputs, batch, batches)
        return {"reference": reference, "plain": plain}
    if method == "plain":
        rates = time_plain(inputs, batch, batches, repeats)
    elif method == "reference":
        rates = time_reference(inputs, batch, batches, repeats)
    else:
        rates, extra["fit_setup_s"] = time_fit(inputs, batch, batches, repeats)
    peak_mb = peak_resident_mb()
    return {"sps": statistics.median(rates), "runs": rates, "peak_mb": peak_mb, **extra}


# ---------------------------------------------------------------------------------------------
# checks and profile
# ---------------------------------------------------------------------------------------------
def check(inputs: int = 64, batch: int = 4) -> None:
    """Feed the same spikes to celltrain and to the reference; compare learned W and theta."""
    layer, stdp, encoder, _ = plain_setup(inputs)
    reference = Reference(inputs)
    connection = layer.connections["input_exc"]
    reference.w = connection.weight.detach().clone()
    x = data(inputs, 3 * batch)
    for b in range(3):
        index = torch.arange(b * batch, (b + 1) * batch)
        spikes = encoder(x[index] * MAX_RATE, index)
        layer.reset()
        stdp.clear()
        layer.run(input=spikes)
        stdp()
        stdp.update()
        reference.batch(spikes.float())
    dw = (connection.weight - reference.w).abs().max().item()
    dtheta = (layer.neurons["exc"].theta - reference.theta).abs().max().item()
    moved = (reference.w - connection.weight).abs().max().item()
    print(f"check: max |W_celltrain - W_reference| = {dw:.2e}, max |theta diff| = {dtheta:.2e}")
    # The reference's theta is the batch mean of float32 adaptations that round at every step
    # (a decay of 1 - 1e-7 per step is float32's rounding step near 1); celltrain learns theta
    # from the window's spikes in float64. Against a float64 recomputation from the same spikes
    # celltrain is within 1e-7 and the reference within about 1e-5, hence the relative bound.
    theta_scale = max(1.0, float(reference.theta.abs().max()))
    if dw > 1e-4 or dtheta > 1e-4 * theta_scale or not math.isfinite(moved):
        raise SystemExit("check FAILED: the reference does not reproduce celltrain's dynamics")


def profile(inputs: int = 64) -> None:
    """cProfile of the plain celltrain loop at batch 1 (one batch after a warm-up)."""
    import cProfile
    import pstats

    *_, run_batch = plain_setup(inputs)
    x = data(inputs, 2)
    run_batch(x[:1], torch.arange(1))
    profiler = cProfile.Profile()
    profiler.enable()
    run_batch(x[1:2], torch.arange(1, 2))
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(15)


def launch(method: str, inputs: int, batch: int, batches: int, threads: int) -> dict:
    """Run one worker process (one timed run of ``batches`` batches) and return its figures."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", method, str(inputs)]
    command += [str(batch), "--batches", str(batches), "--repeats", "1", "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"worker {method} {inputs} {batch} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 timed batch per run (smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration")
    parser.add_argument("--check", action="store_true", help="verify the reference first")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile summary")
    parser.add_argument("--inputs", type=int, nargs="+", default=list(INPUTS))
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "INPUTS", "BATCH"))
    parser.add_argument("--batches", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    if args.worker:
        method, inputs, batch = args.worker[0], int(args.worker[1]), int(args.worker[2])
        print(json.dumps(worker(method, inputs, batch, args.batches, args.repeats)))
        return

    if args.check:
        check()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPU(s), "
        f"{STEPS} steps x {DT} ms per sample, {NEURONS} exc + {NEURONS} inh neurons, "
        f"median of {args.repeats} runs{' (quick)' if args.quick else ''}"
    )
    header = (
        f"{'inputs':>6} {'batch':>5} | {'reference':>9} {'plain':>9} {'fit':>9} | "
        f"{'plain/ref':>9} {'fit/ref':>7} {'fit/plain':>9} | {'peak MB ref/plain/fit':>21} | "
        f"{'fit setup s':>11}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for inputs in args.inputs:
        for batch in args.batch:
            # about 128 samples per timed run (at least 4 batches): long enough to even out
            # the jitter of small operations on a shared 2-core machine
            batches = 1 if args.quick else max(4, 128 // batch)
            # Each round times the reference and the plain loop in one process, batch by batch
            # in turn (so both see the same machine), and Trainer.fit in the next process; the
            # figures are medians over rounds. Peak memory comes from one short run of each
            # method in a process of its own.
            runs: dict[str, list[dict]] = {method: [] for method in METHODS}

            for _ in range(args.repeats):
                pair = launch("pair", inputs, batch, batches, args.threads)
                runs["reference"].append({"sps": pair["reference"]})
                runs["plain"].append({"sps": pair["plain"]})
                runs["fit"].append(launch("fit", inputs, batch, batches, args.threads))
            row = {}
            for method, results_of in runs.items():
                row[method] = {
                    "sps": statistics.median(r["sps"] for r in results_of),
                    "runs": [r["sps"] for r in results_of],
                }
            for method in ("reference", "plain"):
                row[method]["peak_mb"] = launch(method, inputs, batch, 1, args.threads)["peak_mb"]
            row["fit"]["peak_mb"] = max(r["peak_mb"] for r in runs["fit"])
            row["fit"]["fit_setup_s"] = statistics.median(r["fit_setup_s"] for r in runs["fit"])
            results[(inputs, batch)] = row
            ref, plain, fit = (row[m]["sps"] for m in ("reference", "plain", "fit"))
            peaks = "/".join(f"{row[m]['peak_mb']:.0f}" for m in ("reference", "plain", "fit"))
            print(
                f"{inputs:>6} {batch:>5} | {ref:>9.1f} {plain:>9.1f} {fit:>9.1f} | "
                f"{plain / ref:>9.2f} {fit / ref:>7.2f} {fit / plain:>9.2f} | {peaks:>21} | "
                f"{row['fit']['fit_setup_s']:>11.2f}",
                flush=True,
            )
    print("samples/s; ratios > 1 mean faster than the reference (or than the plain loop)")
    print("targets: plain/ref >= 0.8 at batch 1, >= 1.0 at 16 and 32; fit/plain >= 0.9")
    for (inputs, batch), row in results.items():
        ratio = row["plain"]["sps"] / row["reference"]["sps"]
        need = 0.8 if batch == 1 else 1.0
        fit_ratio = row["fit"]["sps"] / row["plain"]["sps"]
        print(
            f"  inputs {inputs:>3} batch {batch:>2}: plain/ref {ratio:.2f} "
            f"({'met' if ratio >= need else 'MISSED'}, target {need}), "
            f"fit/plain {fit_ratio:.2f} ({'met' if fit_ratio >= 0.9 else 'MISSED'})"
        )
    if not args.no_profile:
        print("\ncProfile of the plain celltrain loop, 64 inputs, batch 1, one batch:")
        profile()


if __name__ == "__main__":
    main()
