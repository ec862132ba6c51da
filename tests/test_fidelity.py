"""Fidelity against closed forms: ALIF's threshold uses the decayed adaptation, slow decays keep
their rate in float32, and exact integration makes postsynaptic potentials independent of dt."""

from __future__ import annotations

import math

import pytest
import torch

from celltrain.neural import (
    ALIF,
    LIF,
    DeltaCurrent,
    ExponentialCurrent,
    Izhikevich,
    Layer,
    Linear,
    VoltageJump,
)
from celltrain.observe import EMA, Trace
from celltrain.utils.filters import SLOW_FRACTION, decay_fraction, decayed, state_dtype

REST, RESET, THRESHOLD, TAU_M, R = -65.0, -65.0, -52.0, 20.0, 1.0

# ------------------------------------------------------------------ ALIF: decay, then compare


def test_alif_compares_with_the_adaptation_decayed_in_the_same_step():
    theta_plus, tau_theta, dt = 2.0, 10.0, 1.0
    alif = ALIF(1, theta_plus=theta_plus, tau_theta=tau_theta).double()
    alif.eval()
    assert alif(torch.tensor([[1000.0]], dtype=torch.float64)).item()  # spikes, resets
    assert alif.adaptation.item() == pytest.approx(theta_plus)
    # a voltage halfway between the decayed threshold (the reference simulators') and the
    # threshold with the adaptation from before the step's decay
    decayed_threshold = THRESHOLD + theta_plus * math.exp(-dt / tau_theta)
    stale_threshold = THRESHOLD + theta_plus
    target = (decayed_threshold + stale_threshold) / 2
    current = (target - RESET) / -math.expm1(-dt / TAU_M)
    spike = alif(torch.tensor([[current]], dtype=torch.float64))
    assert stale_threshold - 0.2 < target < stale_threshold  # the stale rule would not fire
    assert spike.item()
    assert alif.adaptation.item() == pytest.approx(
        theta_plus * math.exp(-dt / tau_theta) + theta_plus
    )


def alif_closed_form_spikes(current, steps, *, theta_plus, tau_theta, dt, stale=False):
    """Spike steps of one ALIF under a constant current, one inter-spike interval at a time.

    After a spike (or the start) at step ``k`` with voltage ``v_k`` and adaptation ``a_k``, the
    voltage after step ``n > k`` is ``V + (v_k - V) e_m^(n-k)`` (``V = rest + R I``) and the
    threshold is ``threshold + a_k e_theta^(n-k)``: the next spike is the first ``n`` where the
    first reaches the second; then ``v = reset`` and ``a = a_k e_theta^(n-k) + theta_plus``.
    ``stale``: compare with the adaptation of the step before, ``a_k e_theta^(n-k-1)``.
    """
    e_m, e_theta = math.exp(-dt / TAU_M), math.exp(-dt / tau_theta)
    asymptote = REST + R * current
    k, v, a = -1, REST, 0.0
    spikes = []
    while True:
        for n in range(k + 1, steps):
            gap = n - k
            threshold = THRESHOLD + a * e_theta ** (gap - 1 if stale else gap)
            if asymptote + (v - asymptote) * e_m**gap >= threshold:
                break
        else:
            return spikes
        spikes.append(n)
        a = a * e_theta ** (n - k) + theta_plus
        k, v = n, RESET


@pytest.mark.parametrize(
    ("current", "tau_theta", "dtype"), [(20.0, 100.0, torch.float64), (25.0, 30.0, torch.float32)]
)
def test_alif_spike_times_match_closed_form(current, tau_theta, dtype):
    theta_plus, dt, steps = 1.0, 1.0, 1000
    alif = ALIF(1, theta_plus=theta_plus, tau_theta=tau_theta).to(dtype)
    alif.eval()
    drive = torch.full((1, 1), current, dtype=dtype)
    got = [n for n in range(steps) if alif(drive).item()]
    expected = alif_closed_form_spikes(
        current, steps, theta_plus=theta_plus, tau_theta=tau_theta, dt=dt
    )
    assert len(expected) > 15
    assert got == expected
    # the stale threshold (adaptation before its decay) gives another spike train
    stale = alif_closed_form_spikes(
        current, steps, theta_plus=theta_plus, tau_theta=tau_theta, dt=dt, stale=True
    )
    assert sum(a != b for a, b in zip(stale, expected)) > len(expected) // 2


# ------------------------------------------------------------ slow decays stay accurate in f32


@pytest.mark.parametrize("tau", [1.6e4, 1e7])  # k above SLOW_FRACTION (float32) and below
def test_a_million_float32_decay_steps_match_the_float64_closed_form(tau):
    fraction = decay_fraction(1.0, tau)
    assert (fraction < SLOW_FRACTION) == (tau > 1.6e4)
    start = torch.tensor([1.0, 0.7, 20.0, 13.3, 3.1])
    x = start.to(state_dtype(torch.float32, fraction))
    steps = 1_000_000
    for _ in range(steps):
        x = decayed(x, fraction)
    expected = start.double() * math.exp(-steps / tau)
    torch.testing.assert_close(x.double(), expected, rtol=1e-4, atol=0)


def test_float32_alif_adaptation_decays_with_its_own_time_constant():
    """tau_theta = 1e7 ms: a float32 factor exp(-1/1e7) decays as if tau were 8.4e6 ms."""
    tau_theta, steps = 1e7, 100_000
    alif = ALIF(3, tau_theta=tau_theta)
    theta = torch.tensor([20.0, 1.0, 0.5])  # exact in float32
    with torch.no_grad():
        alif.theta.copy_(theta)
    alif.eval()
    zero = torch.zeros(1, 3)
    for _ in range(steps):
        alif(zero)
    expected = theta.double() * math.exp(-steps / tau_theta)
    torch.testing.assert_close(alif.adaptation[0].double(), expected, rtol=1e-9, atol=0)
    # the float32 rounding of the factor alone is off by 2e-3 here
    assert abs(float(torch.tensor(math.exp(-1 / tau_theta))) ** steps / math.exp(-0.01) - 1) > 1e-3


def test_float32_alif_theta_learned_over_a_window_matches_per_step_learning():
    torch.manual_seed(0)
    currents = torch.rand(40, 4, 6) * 40.0
    learned = []
    for window in (False, True):
        alif = ALIF(6, theta_plus=0.3, tau_theta=1e7)
        if window:
            alif.prepare(currents[0])
            alif.begin_window()
            spikes = torch.stack([alif.advance(c) for c in currents])
            alif.end_window(spikes)
        else:
            for c in currents:
                alif(c)
        alif.updater.step()
        learned.append(alif.theta.detach().clone())
    torch.testing.assert_close(learned[0], learned[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tau", [1e4, 1e6])
def test_float32_trace_decays_with_its_own_time_constant(tau):
    steps = 100_000
    trace = Trace(tau=tau)
    spike, none = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    trace(spike, 1.0)
    for _ in range(steps):
        trace(none, 1.0)
    expected = math.exp(-steps / tau)
    assert trace.peek().dtype == state_dtype(torch.float32, decay_fraction(1.0, tau))
    torch.testing.assert_close(
        trace.peek().double(), torch.full((2,), expected, dtype=torch.float64), rtol=1e-4, atol=0
    )
    # the window fold agrees with the step folds
    windowed = Trace(tau=tau)
    events = torch.zeros(steps + 1, 2, dtype=torch.bool)
    events[0] = True
    windowed.run(events, 1.0)
    torch.testing.assert_close(windowed.peek().double(), trace.peek().double(), rtol=1e-4, atol=0)


def test_float32_ema_with_a_small_weight_keeps_its_rate():
    alpha, steps = 1e-6, 100_000
    ema = EMA(alpha)
    ema(torch.zeros(3))
    one = torch.ones(3)
    for _ in range(steps):
        ema(one)
    expected = 1.0 - (1.0 - alpha) ** steps
    torch.testing.assert_close(
        ema.peek().double(), torch.full((3,), expected, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_float32_exponential_current_decays_with_its_own_time_constant():
    tau, steps = 1e4, 50_000
    synapse = ExponentialCurrent(tau=tau)
    synapse(torch.ones(1, 2, dtype=torch.bool))
    none = torch.zeros(1, 2, dtype=torch.bool)
    for _ in range(steps):
        synapse(none)
    expected = torch.full((1, 2), math.exp(-steps / tau), dtype=torch.float64)
    torch.testing.assert_close(synapse.current.double(), expected, rtol=1e-4, atol=0)


# ------------------------------------------------------------------------ exact integration


def psp(t, *, weight, tau_s, tau_m=TAU_M, resistance=R):
    """Analytic PSP (mV) at ``t`` ms after a current ``weight * exp(-t / tau_s)`` starts."""
    if abs(tau_s - tau_m) < 1e-12:
        return weight * resistance * (t / tau_m) * math.exp(-t / tau_m)
    scale = weight * resistance * tau_s / (tau_s - tau_m)
    return scale * (math.exp(-t / tau_s) - math.exp(-t / tau_m))


def one_spike_voltages(synapse, dt, steps, *, recurrent=False, tau_m=TAU_M):
    """Voltage (mV above rest) of a non-firing LIF after each step; one presynaptic spike of
    weight 3 at step 0, from an input or (recurrent) from a neuron driven to fire at step 0."""
    target = LIF(1, tau_membrane=tau_m, threshold_voltage=1e9)
    neurons = {"post": target}
    if recurrent:
        neurons["pre"] = LIF(1, refractory_period=1e9)
        connections = {
            "kick": ("input", "pre", Linear(1, 1, weight=torch.full((1, 1), 1e6))),
            "syn": ("pre", "post", Linear(1, 1, weight=torch.full((1, 1), 3.0), synapse=synapse)),
        }
    else:
        connections = {
            "syn": ("input", "post", Linear(1, 1, weight=torch.full((1, 1), 3.0), synapse=synapse))
        }
    layer = Layer(neurons, connections, dt=dt).double()
    spikes = torch.zeros(steps, 1, 1, dtype=torch.bool)
    spikes[0] = True
    voltages = []
    for t in range(steps):
        layer(input=spikes[t])
        voltages.append(target.voltage.item() - REST)
    return voltages


@pytest.mark.parametrize("dt", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("tau_s", [5.0, 20.0, 2.0])
def test_exact_exponential_current_gives_the_analytic_psp_at_every_step(dt, tau_s):
    steps = int(round(60.0 / dt))
    synapse = ExponentialCurrent(tau=tau_s, tau_membrane=TAU_M)
    got = one_spike_voltages(synapse, dt, steps)
    expected = [psp((n + 1) * dt, weight=3.0, tau_s=tau_s) for n in range(steps)]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-10


def test_exact_psp_is_the_same_through_a_recurrent_connection_one_step_later():
    dt, steps = 0.5, 80
    synapse = ExponentialCurrent(tau=5.0, tau_membrane=TAU_M)
    got = one_spike_voltages(synapse, dt, steps, recurrent=True)
    # the presynaptic neuron fires at step 0; a recurrent source is read one step later
    expected = [0.0] + [psp((n + 1) * dt, weight=3.0, tau_s=5.0) for n in range(steps - 1)]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-10


def test_default_exponential_current_psp_is_biased_by_dt_as_documented():
    peaks = {}
    for dt in (1.0, 0.1):
        steps = int(round(60.0 / dt))
        voltages = one_spike_voltages(ExponentialCurrent(tau=5.0), dt, steps)
        peaks[dt] = max(voltages)
    exact_peak = max(psp(n * 1e-3, weight=3.0, tau_s=5.0) for n in range(1, 60_000))
    assert exact_peak == pytest.approx(0.4725, abs=1e-4)
    assert peaks[1.0] == pytest.approx(0.522, abs=1e-3)  # 10.4% above
    assert peaks[1.0] / exact_peak - 1 == pytest.approx(0.104, abs=0.002)
    assert 0.008 < peaks[0.1] / exact_peak - 1 < 0.012  # 1% above
    # the charge of one spike: amplitude * dt / (1 - exp(-dt / tau)) against amplitude * tau
    synapse = ExponentialCurrent(tau=5.0)
    total = sum(
        synapse(torch.tensor([[t == 0]])).item() * 1.0 for t in range(2000)
    )  # nA * ms at dt = 1
    assert total == pytest.approx(1.0 / -math.expm1(-1.0 / 5.0), rel=1e-5)


@pytest.mark.parametrize("exact", [False, True])
def test_exponential_current_window_equals_steps(exact):
    torch.manual_seed(3)
    spikes = torch.rand(30, 2, 4) < 0.3
    make = lambda: ExponentialCurrent(tau=4.0, tau_membrane=10.0 if exact else None)  # noqa: E731
    stepped, windowed = make(), make()
    per_step = torch.stack([stepped(s) for s in spikes])
    torch.testing.assert_close(windowed.run(spikes), per_step)
    torch.testing.assert_close(windowed.current, stepped.current)
    if exact:  # the state is the decaying current itself, the output is scaled
        torch.testing.assert_close(per_step[-1], stepped.current * stepped.exact_factor())


def test_exact_synapse_in_a_layer_run_equals_the_step_path():
    torch.manual_seed(4)

    def build():
        exc = LIF(5, tau_membrane=15.0, threshold_voltage=-60.0)
        inh = LIF(5, tau_membrane=10.0, threshold_voltage=-60.0)
        return Layer(
            {"exc": exc, "inh": inh},
            {
                "in": ("input", "exc", Linear(3, 5, synapse=ExponentialCurrent(5.0, 3.0, 15.0))),
                "ei": (
                    "exc",
                    "inh",
                    Linear(5, 5, weight_range=(5, 10), synapse=ExponentialCurrent(3.0, 2.0, 10.0)),
                ),
            },
        )

    stepped = build()
    windowed = build()
    windowed.load_state_dict(stepped.state_dict())
    spikes = torch.rand(50, 2, 3) < 0.4
    per_step = [stepped(input=s) for s in spikes]
    run = windowed.run(input=spikes)
    for name in ("exc", "inh"):
        assert torch.equal(run[name], torch.stack([out[name] for out in per_step]))
        torch.testing.assert_close(
            windowed.neurons[name].voltage, stepped.neurons[name].voltage, rtol=1e-5, atol=1e-5
        )
    assert run["inh"].any()


def test_exact_and_jump_synapses_check_their_target():
    with pytest.raises(ValueError, match=r"connection 'c'.*tau_membrane=10.0.*'post' has tau"):
        Layer(
            {"post": LIF(1, tau_membrane=20.0)},
            {"c": ("input", "post", Linear(1, 1, synapse=ExponentialCurrent(tau_membrane=10.0)))},
        )
    with pytest.raises(ValueError, match=r"linear \(LIF / ALIF\).*'post' is a Izhikevich"):
        Layer(
            {"post": Izhikevich(1)}, {"c": ("input", "post", Linear(1, 1, synapse=VoltageJump()))}
        )
    with pytest.raises(ValueError, match=r"resistance=2.0 but target 'post' has resistance=1.0"):
        Layer(
            {"post": ALIF(1)},
            {"c": ("input", "post", Linear(1, 1, synapse=VoltageJump(resistance=2.0)))},
        )
    with pytest.raises(ValueError, match="tau_membrane must be a finite number > 0"):
        ExponentialCurrent(tau_membrane=0.0)
    # the default synapses fit any target
    Layer({"post": Izhikevich(1)}, {"c": ("input", "post", Linear(1, 1))})


# --------------------------------------------------------------------------- voltage jumps


@pytest.mark.parametrize("dt", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("neuron", [LIF, ALIF])
def test_voltage_jump_moves_the_voltage_by_the_weight_whatever_dt(dt, neuron):
    weight, amplitude = 3.0, 0.5
    target = neuron(2, tau_membrane=TAU_M, resistance=2.0, threshold_voltage=1e9)
    layer = Layer(
        {"post": target},
        {
            "jump": (
                "input",
                "post",
                Linear(
                    2,
                    2,
                    weight=torch.eye(2) * weight,
                    synapse=VoltageJump(amplitude, tau_membrane=TAU_M, resistance=2.0),
                ),
            )
        },
        dt=dt,
    ).double()
    spikes = torch.tensor([[True, False]])
    layer(input=spikes)
    jumps = target.voltage[0] - REST
    torch.testing.assert_close(
        jumps, torch.tensor([weight * amplitude, 0.0], dtype=torch.float64), rtol=1e-12, atol=1e-12
    )
    # then it decays back to rest with the membrane's time constant
    steps = int(round(10.0 / dt))
    for _ in range(steps):
        layer(input=torch.zeros(1, 2, dtype=torch.bool))
    expected = weight * amplitude * math.exp(-steps * dt / TAU_M)
    assert target.voltage[0, 0].item() - REST == pytest.approx(expected, rel=1e-9)


def test_delta_current_jump_scales_with_dt_as_documented():
    jumps = []
    for dt in (1.0, 0.1, 0.01):
        target = LIF(1, threshold_voltage=1e9)
        layer = Layer(
            {"post": target},
            {"c": ("input", "post", Linear(1, 1, weight=torch.full((1, 1), 3.0)))},
            dt=dt,
        ).double()
        layer(input=torch.ones(1, 1, dtype=torch.bool))
        jumps.append(round(target.voltage.item() - REST, 4))
    assert jumps == [0.1463, 0.015, 0.0015]
    assert isinstance(Linear(1, 1).synapse, DeltaCurrent)
