"""Reward-modulated STDP (Florian 2007) with celltrain's ``MSTDPET``.

Two demonstrations, one figure (``examples/reward_mstdpet.png``, written next to this file):

(a) Florian's single-synapse example: one presynaptic and one postsynaptic neuron, spikes forced
    at fixed times, reward +1 up to step 100 and -1 after. The weight is plotted over time for
    ``STDP`` (reward-blind), ``MSTDP`` (the STDP term times the reward of the same step) and
    ``MSTDPET`` (the STDP term goes into an eligibility trace; the reward reads the trace, so
    the weight keeps moving after a pairing while reward is given).
(b) Reward steers a population: two Poisson input groups, four LIF outputs, each output
    designated for one group. Each trial presents one group (alternating across the batch);
    the per-sample reward of a step is +1 when a designated output fires for the presented
    group and -1 when an output of the other group fires. After training with ``MSTDPET``
    each output fires mostly for its own group.

Only the public celltrain API is used. Run: ``python examples/reward_mstdpet.py`` (< 1 minute).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from celltrain.learn import MSTDP, MSTDPET, STDP  # noqa: E402
from celltrain.neural import (  # noqa: E402
    LIF,
    HardBound,
    Layer,
    Linear,
    PoissonEncoder,
    voltage_resistance,  # noqa: E402
)

HERE = Path(__file__).resolve().parent
DT = 1.0  # ms

# --------------------------------------------------------------------------------------------
# (a) Florian 2007, single synapse
# --------------------------------------------------------------------------------------------
PRE_TIMES = (10, 85, 115, 135)
POST_TIMES = (15, 75, 110, 140)
STEPS_A = 200


def florian_reward(step: int) -> float:
    """+1 up to step 100, -1 after."""
    return 1.0 if step <= 100 else -1.0


def single_synapse(rule: str) -> list[float]:
    """Weight of the learned synapse after each step, for ``rule`` in STDP / MSTDP / MSTDPET."""
    post = LIF(1, tau_membrane=20.0, resistance=voltage_resistance(20.0, DT))  # weights are mV
    layer = Layer(
        neurons={"post": post},
        connections={
            # the learned synapse: 0.2 mV, far below the 13 mV from rest to threshold
            "pre_post": ("pre", "post", Linear(1, 1, weight=torch.tensor([[0.2]]))),
            # forces the post spikes: 100 mV in one step
            "drive_post": ("drive", "post", Linear(1, 1, weight=torch.tensor([[100.0]]))),
        },
        inputs=("pre", "drive"),
        dt=DT,
    )
    common = dict(lr_post=0.2, lr_pre=-0.2, tau_pre=20.0, tau_post=20.0)
    if rule == "STDP":
        trainer = STDP(**common)
    elif rule == "MSTDP":
        trainer = MSTDP(**common)
    else:
        trainer = MSTDPET(**common, tau_eligibility=25.0)
    trainer.register_cell("pre_post", layer.cell("pre_post"))
    weight = layer.connections["pre_post"].weight
    layer.reset()
    trainer.clear()
    weights = []
    for step in range(STEPS_A):
        pre = torch.tensor([[step in PRE_TIMES]])
        drive = torch.tensor([[step in POST_TIMES]])
        out = layer(pre=pre, drive=drive)
        if bool(out["post"][0, 0]) != (step in POST_TIMES):
            raise RuntimeError(f"post neuron spiked unexpectedly at step {step}")
        if rule == "STDP":
            trainer()
        else:
            trainer(florian_reward(step))
        trainer.update()  # applied every step, as in the paper
        weights.append(float(weight[0, 0]))
    return weights


# --------------------------------------------------------------------------------------------
# (b) reward steers a population
# --------------------------------------------------------------------------------------------
GROUP = 10  # input neurons per group
GROUPS = 2
OUTPUTS = 4  # output k is designated for group k % 2
RATE = 60.0  # Hz of the active group (the other is silent)
STEPS_B = 100  # 100 ms per trial
BATCH = 16  # trials simulated in parallel: half group 0, half group 1
TRIALS = 40  # batches of training


def population_layer(seed: int = 0) -> Layer:
    torch.manual_seed(seed)
    out = LIF(
        OUTPUTS, tau_membrane=20.0, refractory_period=2.0, resistance=voltage_resistance(20, DT)
    )
    connection = Linear(GROUPS * GROUP, OUTPUTS, weight_range=(1.0, 1.6), bound=HardBound(0.0, 3.0))
    return Layer({"out": out}, {"in_out": ("input", "out", connection)}, dt=DT)


def presented_groups(batch: int, trial: int) -> torch.Tensor:
    """Group shown to each sample of a batch: alternating, shifted every trial."""
    return (torch.arange(batch) + trial) % GROUPS


def rates_of(groups: torch.Tensor) -> torch.Tensor:
    rates = torch.zeros(groups.shape[0], GROUPS, GROUP)
    rates[torch.arange(groups.shape[0]), groups] = RATE
    return rates.flatten(1)


DESIGNATED = torch.arange(OUTPUTS) % GROUPS  # group of each output


def step_reward(spikes: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per-sample reward (B,): +1 if a designated output fired, -1 if another one did."""
    match = DESIGNATED.unsqueeze(0) == groups.unsqueeze(1)  # (B, OUTPUTS)
    good = (spikes & match).any(1).float()
    bad = (spikes & ~match).any(1).float()
    return good - bad


def preference(layer: Layer, rule: MSTDPET, encoder: PoissonEncoder, trial: int) -> torch.Tensor:
    """Mean spike count of each output (rows) for each presented group (columns), no learning."""
    rule.train(False)  # detaches the rule's monitors: nothing is learned or observed
    groups = presented_groups(64, 0)
    layer.reset()
    counts = torch.zeros(64, OUTPUTS)
    for spikes in encoder(rates_of(groups), torch.arange(64) + 10_000 * trial):
        counts += layer(input=spikes)["out"].float()
    rule.train(True)
    return torch.stack([counts[groups == g].mean(0) for g in range(GROUPS)], dim=1)


def population() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    layer = population_layer()
    rule = MSTDPET(lr_post=1.0, lr_pre=-1.0, tau_pre=20.0, tau_post=20.0, tau_eligibility=25.0)
    rule.register_cell("in_out", layer.cell("in_out"))
    encoder = PoissonEncoder(STEPS_B, dt=DT, seed=1)
    weight = layer.connections["in_out"].weight
    before = preference(layer, rule, encoder, 0)
    history = [weight.view(OUTPUTS, GROUPS, GROUP).mean(2).clone()]
    for trial in range(TRIALS):
        groups = presented_groups(BATCH, trial)
        layer.reset()
        rule.clear()
        index = torch.arange(BATCH) + BATCH * trial
        for spikes in encoder(rates_of(groups), index):
            out = layer(input=spikes)["out"]
            rule(step_reward(out, groups))  # one reward per sample, shape (B,)
        rule.update()
        history.append(weight.view(OUTPUTS, GROUPS, GROUP).mean(2).clone())
    after = preference(layer, rule, encoder, 1)
    return before, after, torch.stack(history)


def selectivity(pref: torch.Tensor) -> torch.Tensor:
    """Per output: (count for its own group - count for the other) / (sum + eps)."""
    own = pref[torch.arange(OUTPUTS), DESIGNATED]
    other = pref[torch.arange(OUTPUTS), 1 - DESIGNATED]
    return (own - other) / (own + other + 1e-9)


def main() -> None:
    start = time.perf_counter()
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation cost
    curves = {rule: single_synapse(rule) for rule in ("STDP", "MSTDP", "MSTDPET")}
    for rule, w in curves.items():
        print(f"(a) {rule:8s} weight: start 0.200, step 100 {w[100]:.3f}, end {w[-1]:.3f}")

    before, after, history = population()
    print("(b) mean spikes per 100 ms trial, rows = outputs (designated group), cols = group 0/1")
    for k in range(OUTPUTS):
        print(
            f"    output {k} (group {int(DESIGNATED[k])}): before {before[k, 0]:5.2f} "
            f"{before[k, 1]:5.2f}   after {after[k, 0]:5.2f} {after[k, 1]:5.2f}"
        )
    sel_before, sel_after = selectivity(before), selectivity(after)
    print(f"    selectivity before: {[round(v, 2) for v in sel_before.tolist()]}")
    print(f"    selectivity after:  {[round(v, 2) for v in sel_after.tolist()]}")
    steered = bool((sel_after > 0.5).all() and (sel_after > sel_before + 0.3).all())
    print(f"    reward steered every output to its designated group: {steered}")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for rule, w in curves.items():
        ax.plot(range(STEPS_A), w, label=rule)
    for t in PRE_TIMES:
        ax.axvline(t, color="tab:green", lw=0.6, ls=":")
    for t in POST_TIMES:
        ax.axvline(t, color="tab:red", lw=0.6, ls="--")
    ax.axvspan(100, STEPS_A, color="0.9", zorder=0, label="reward -1")
    ax.set(xlabel="time step (ms)", ylabel="weight", title="(a) single synapse (Florian 2007)")
    ax.legend(loc="best", fontsize=8)
    ax = axes[1]
    for k in range(OUTPUTS):
        for g in range(GROUPS):
            ax.plot(
                history[:, k, g],
                color=f"C{k}",
                ls="-" if g == int(DESIGNATED[k]) else "--",
                label=f"group {g} -> out {k}",
            )
    ax.set(
        xlabel="training batch",
        ylabel="mean weight",
        title=f"(b) MSTDPET, batch {BATCH}: solid = designated group",
    )
    ax.legend(loc="best", fontsize=7, ncol=2)
    fig.tight_layout()
    path = HERE / "reward_mstdpet.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
