"""Neuron models against closed forms and independent reference loops."""

from __future__ import annotations

import math

import pytest
import torch

from celltrain.neural import ALIF, LIF, Izhikevich, Updater

DTS = [0.1, 0.25, 0.5, 1.0, 2.0]


def closed_form(t, v0, current, *, rest, resistance, tau):
    """Exact LIF membrane voltage after ``t`` ms of constant ``current`` (float64)."""
    decay = math.exp(-t / tau)
    return rest + resistance * current * (1.0 - decay) + (v0 - rest) * decay


# --------------------------------------------------------------------------------------- LIF


@pytest.mark.parametrize("dt", DTS)
@pytest.mark.parametrize(
    ("seed", "dtype"),
    [(0, torch.float64), (1, torch.float64), (2, torch.float32), (3, torch.float32)],
)
def test_lif_subthreshold_matches_closed_form(dt, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    shape = tuple(int(s) for s in torch.randint(1, 5, (2,), generator=g))
    batch = 3
    tau = float(torch.empty(()).uniform_(5.0, 40.0, generator=g))
    resistance = float(torch.empty(()).uniform_(0.5, 3.0, generator=g))
    rest, threshold = -65.0, 1e6  # never spikes
    lif = LIF(shape, tau_membrane=tau, resistance=resistance, threshold_voltage=threshold)
    lif.to(dtype)
    lif.dt = dt
    current = torch.empty(batch, *shape, dtype=torch.float64).uniform_(-10.0, 20.0, generator=g)
    v0 = torch.empty(batch, *shape, dtype=torch.float64).uniform_(-80.0, -50.0, generator=g)
    lif(torch.zeros(batch, *shape, dtype=dtype))  # creates the state; then start it at v0
    lif.voltage = v0.to(dtype)
    # float32: each step rounds at ~ulp(100 mV); rounding errors decay with the membrane, so
    # they add up to at most ulp / (1 - exp(-dt/tau)).
    eps = torch.finfo(dtype).eps
    atol = 4 * eps * 100.0 / (1.0 - math.exp(-dt / tau))
    for n in range(1, int(round(30.0 / dt)) + 1):
        spikes = lif(current.to(dtype))
        assert not spikes.any()
        expected = closed_form(n * dt, v0, current, rest=rest, resistance=resistance, tau=tau)
        torch.testing.assert_close(lif.voltage.double(), expected, rtol=0, atol=atol)


@pytest.mark.parametrize("dt", DTS)
def test_lif_fires_at_step_predicted_by_closed_form(dt):
    tau, rest, threshold, resistance = 20.0, -65.0, -52.0, 2.0
    # currents whose crossing times are not within float error of a step boundary
    currents = torch.tensor([[7.0, 9.0, 12.5, 30.0, 100.0, 6.4]])
    lif = LIF(6, tau_membrane=tau, resistance=resistance, threshold_voltage=threshold)
    lif.dt = dt
    first = torch.full((6,), -1)
    checked = 0
    for n in range(1, int(200 / dt)):
        spikes = lif(currents)[0]
        first[(first < 0) & spikes] = n
    for i, current in enumerate(currents[0].tolist()):
        asymptote = rest + resistance * current
        if asymptote <= threshold:
            assert first[i] == -1
            continue
        # smallest n with v(n dt) >= threshold
        t_cross = -tau * math.log(1.0 - (threshold - rest) / (resistance * current))
        n_expected = math.ceil(t_cross / dt - 1e-9)
        v_at = closed_form(
            n_expected * dt, rest, current, rest=rest, resistance=resistance, tau=tau
        )
        v_before = closed_form(
            (n_expected - 1) * dt, rest, current, rest=rest, resistance=resistance, tau=tau
        )
        if min(abs(v_at - threshold), abs(v_before - threshold)) < 1e-3:
            continue  # too close to call in float32
        assert int(first[i]) == n_expected, (current, int(first[i]), n_expected)
        checked += 1
    assert checked >= 4


def test_lif_reset_value_and_repeated_firing():
    lif = LIF(1, rest_voltage=-65.0, reset_voltage=-70.0, threshold_voltage=-52.0)
    strong = torch.full((1, 1), 50.0)  # asymptote -15 mV: fires every few steps
    spikes = []
    for _ in range(100):
        s = lif(strong)
        spikes.append(bool(s))
        if s:
            assert lif.voltage.item() == -70.0
        else:
            assert lif.voltage.item() < -52.0
    # after reset at -70 the interval to the next spike follows the closed form from v0=-70
    t_cross = -20.0 * math.log((-65.0 + 50.0 - -52.0) / (-65.0 + 50.0 - -70.0))
    times = [i for i, s in enumerate(spikes) if s]
    assert len(times) >= 3
    assert times[0] + 1 == math.ceil(-20.0 * math.log(37.0 / 50.0))  # first one from rest
    gaps = {b - a for a, b in zip(times, times[1:])}
    assert gaps == {math.ceil(t_cross)}


@pytest.mark.parametrize(
    ("dt", "period"),
    [
        (1.0, 0.0),
        (1.0, 1.0),
        (1.0, 5.0),
        (0.1, 0.5),
        (0.1, 3.0),
        (0.2, 1.0),
        (0.3, 3.0),
        (0.25, 2.0),
        (0.5, 5.0),
    ],
)
def test_lif_refractory_holds_exactly_period(dt, period):
    lif = LIF(2, refractory_period=period, reset_voltage=-70.0)
    lif.dt = dt
    huge = torch.full((1, 2), 1e7)  # crosses threshold in any single free step
    assert lif(huge).all()
    held_steps = round(period / dt)
    for k in range(held_steps):
        # input is ignored: huge positive or negative current changes nothing
        current = huge if k % 2 == 0 else -huge
        assert not lif(current).any(), f"spike during refractory step {k}"
        assert torch.equal(lif.voltage, torch.full((1, 2), -70.0))
    assert lif(huge).all(), "refractory lasted longer than refractory_period"


def test_lif_refractory_non_multiple_of_dt_rounds_up():
    lif = LIF(1, refractory_period=2.5)
    huge = torch.full((1, 1), 1e7)
    assert lif(huge).all()
    assert not lif(huge).any() and not lif(huge).any() and not lif(huge).any()
    assert lif(huge).all()


def test_lif_state_shapes_dtype_and_reset():
    lif = LIF((2, 3))
    spikes = lif(torch.full((4, 2, 3), 100.0))
    assert spikes.dtype == torch.bool and spikes.shape == (4, 2, 3)
    assert lif.voltage.shape == lif.refractory.shape == (4, 2, 3)
    assert lif.size == 6
    lif.reset()
    assert lif.voltage.numel() == 0
    # after reset a new batch size is fine and starts at rest
    lif(torch.zeros(5, 2, 3))
    assert torch.equal(lif.voltage, torch.full((5, 2, 3), -65.0))
    # state is not in the state_dict (no batch size pinned in checkpoints)
    assert "voltage" not in lif.state_dict()


def test_lif_dt_change_changes_decay():
    lif = LIF(1, tau_membrane=10.0)
    lif(torch.zeros(1, 1))
    lif.voltage = torch.full((1, 1), -55.0)
    lif.dt = 3.0
    lif(torch.zeros(1, 1))
    assert lif.voltage.item() == pytest.approx(-65.0 + 10.0 * math.exp(-0.3), abs=1e-5)


# -------------------------------------------------------------------------------------- ALIF


def classic_alif(current, *, steps, dt, theta0, theta_plus, tau_theta, tau, rest, reset, thr, r):
    """The classic per-spike rule for one sample, in float64: theta itself adapts. Within a
    step theta decays first and the voltage is compared with the decayed theta (Diehl & Cook's
    code, Brian2, BindsNET)."""
    v = torch.full_like(theta0, rest)
    theta = theta0.clone()
    spikes = []
    for _ in range(steps):
        decay = math.exp(-dt / tau)
        v = rest + (v - rest) * decay + r * (1 - decay) * current
        theta = theta * math.exp(-dt / tau_theta)
        s = v >= thr + theta
        v = torch.where(s, torch.full_like(v, reset), v)
        theta = theta + theta_plus * s.double()
        spikes.append(s)
    return theta, torch.stack(spikes)


ALIF_KW = dict(
    theta_plus=0.7,
    tau_theta=50.0,
    tau_membrane=10.0,
    rest_voltage=-65.0,
    reset_voltage=-65.0,
    threshold_voltage=-60.0,
    resistance=1.0,
)


def test_alif_adaptation_closed_form_per_sample():
    dt = 0.5
    alif = ALIF(3, **ALIF_KW)
    alif.dt = dt
    with torch.no_grad():
        alif.theta.copy_(torch.tensor([0.5, 1.0, 2.0]))
    currents = torch.tensor([[0.0, 0.0, 0.0], [20.0, 8.0, 0.0], [40.0, 40.0, 9.0]])
    times = [[] for _ in range(9)]
    steps = 120
    for n in range(1, steps + 1):
        spikes = alif(currents)
        for idx in spikes.flatten().nonzero().flatten().tolist():
            times[idx].append(n)
    theta0 = alif.theta.detach().double()
    decay = lambda t: math.exp(-t / 50.0)  # noqa: E731
    for b in range(3):
        for i in range(3):
            spikes_at = times[b * 3 + i]
            expected = theta0[i].item() * decay(steps * dt) + 0.7 * sum(
                decay((steps - n) * dt) for n in spikes_at
            )
            assert alif.adaptation[b, i].item() == pytest.approx(expected, abs=1e-5)
    # samples adapt on their own: sample 0 had no input and never spiked
    assert not times[0] and not times[1] and not times[2]
    assert len(times[6]) > len(times[3]) > 0
    # the threshold is threshold_voltage + adaptation, per sample
    torch.testing.assert_close(alif.threshold(), -60.0 + alif.adaptation)


def test_alif_adaptation_starts_at_learned_theta():
    alif = ALIF((2, 2), **ALIF_KW)
    with torch.no_grad():
        alif.theta.copy_(torch.tensor([[100.0, 0.0], [3.0, 0.5]]))
    alif(torch.zeros(4, 2, 2))
    expected = alif.theta * math.exp(-1.0 / 50.0)
    torch.testing.assert_close(alif.adaptation, expected.expand(4, 2, 2))
    # a learned theta of 100 mV blocks firing; 0 does not
    alif.reset()
    spikes = alif(torch.full((1, 2, 2), 1000.0))
    assert spikes.tolist() == [[[False, True], [True, True]]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alif_batch1_apply_equals_classic_rule(seed):
    g = torch.Generator().manual_seed(seed)
    shape = (int(torch.randint(1, 6, (1,), generator=g)),)
    dt = [0.5, 1.0][seed % 2]
    steps = 150
    alif = ALIF(shape, **ALIF_KW)
    alif.learning = True  # as a trainer in training mode sets it
    alif.dt = dt
    theta0 = torch.rand(shape, generator=g) * 2.0
    with torch.no_grad():
        alif.theta.copy_(theta0)
    current = torch.rand(shape, generator=g) * 30.0 + 3.0
    for _ in range(steps):
        alif(current.unsqueeze(0))
        torch.testing.assert_close(alif.theta.detach(), theta0)  # not until apply()
    assert alif.updater.pending
    expected, ref_spikes = classic_alif(
        current.double(),
        steps=steps,
        dt=dt,
        theta0=theta0.double(),
        theta_plus=0.7,
        tau_theta=50.0,
        tau=10.0,
        rest=-65.0,
        reset=-65.0,
        thr=-60.0,
        r=1.0,
    )
    assert ref_spikes.any()
    alif.updater.step()
    assert not alif.updater.pending
    torch.testing.assert_close(alif.theta.detach().double(), expected, rtol=0, atol=1e-4)
    # theta survives reset(), and the next sample starts from it
    alif.reset()
    torch.testing.assert_close(alif.theta.detach().double(), expected, rtol=0, atol=1e-4)
    alif(torch.zeros(1, *shape))
    torch.testing.assert_close(
        alif.adaptation[0], alif.theta.detach() * math.exp(-dt / 50.0), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_alif_batch_pending_update_is_reduced_adaptation_change(reduction):
    g = torch.Generator().manual_seed(7)
    alif = ALIF(5, batch_reduction=reduction, **ALIF_KW)
    alif.learning = True
    theta0 = torch.rand(5, generator=g)
    with torch.no_grad():
        alif.theta.copy_(theta0)
    currents = torch.rand(8, 5, generator=g) * 40.0
    for _ in range(80):
        alif(currents)
    change = alif.adaptation - theta0
    expected = change.mean(0) if reduction == "mean" else change.sum(0)
    pending = alif.updater.theta.pos - alif.updater.theta.neg
    torch.testing.assert_close(pending, expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(alif.theta.detach(), theta0)
    alif.updater.step()
    torch.testing.assert_close(alif.theta.detach(), theta0 + expected, rtol=0, atol=1e-4)


def test_alif_without_learning_adds_nothing_whatever_its_training_mode():
    alif = ALIF(4, **ALIF_KW)
    assert alif.training and not alif.learning  # a neuron alone does not learn
    for _ in range(50):
        spikes = alif(torch.full((3, 4), 50.0))
    assert spikes.any() and (alif.adaptation > 0).all()
    assert not alif.updater.pending
    theta = alif.theta.detach().clone()
    alif.updater.step()
    assert torch.equal(alif.theta.detach(), theta)
    # switched on (as a trainer in training mode does) it records, in eval mode too
    alif.learning = True
    alif.eval()
    alif(torch.full((3, 4), 50.0))
    assert alif.updater.pending


def test_alif_theta_is_a_learned_parameter_with_updater():
    alif = ALIF((2, 3))
    assert isinstance(alif.theta, torch.nn.Parameter)
    assert not alif.theta.requires_grad and alif.theta.shape == (2, 3)
    assert isinstance(alif.updater, Updater) and alif.updater.names == ["theta"]
    assert "theta" in alif.state_dict()
    assert LIF(3).updater is None


# ---------------------------------------------------------------------------------- Izhikevich


def euler_izhikevich(current, steps, dt, a=0.02, b=0.2, c=-65.0, d=8.0):
    v = torch.full_like(current, c)
    u = b * v
    vs, spikes = [], []
    for _ in range(steps):
        dv = 0.04 * v * v + 5.0 * v + 140.0 - u + current
        v_new = v + dt * dv
        u_new = u + dt * a * (b * v - u)
        s = v_new >= 30.0
        v = torch.where(s, torch.full_like(v, c), v_new)
        u = torch.where(s, u_new + d, u_new)
        vs.append(v)
        spikes.append(s)
    return torch.stack(vs), torch.stack(spikes)


def test_izhikevich_regular_spiking_fires_for_suprathreshold_current_only():
    neuron = Izhikevich(2)
    current = torch.tensor([[10.0, 0.0]])
    count = torch.zeros(2)
    for _ in range(500):
        count += neuron(current)[0]
    assert count[0] >= 5 and count[1] == 0
    assert neuron.voltage[0, 1] < -60.0  # settles near rest


@pytest.mark.parametrize("dt", [0.25, 1.0])
def test_izhikevich_matches_hand_written_euler(dt):
    current = torch.tensor([[0.0, 5.0, 10.0, 15.0]], dtype=torch.float64)
    neuron = Izhikevich(4).double()
    neuron.dt = dt
    steps = int(100 / dt)
    got_v, got_s = [], []
    for _ in range(steps):
        got_s.append(neuron(current))
        got_v.append(neuron.voltage)
    ref_v, ref_s = euler_izhikevich(current, steps, dt)
    assert torch.equal(torch.stack(got_s), ref_s)
    assert ref_s[:, 0, 2:].any()
    torch.testing.assert_close(torch.stack(got_v), ref_v)


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "factory", [lambda: LIF((2, 3)), lambda: ALIF((2, 3)), lambda: Izhikevich((2, 3))]
)
def test_current_of_wrong_shape_raises(factory):
    neuron = factory()
    with pytest.raises(
        ValueError, match=r"current must have shape \(batch, 2, 3\), got \(4, 3, 2\)"
    ):
        neuron(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match=r"current.*got \(2, 3\)"):
        neuron(torch.zeros(2, 3))  # batch dimension missing
    with pytest.raises(TypeError, match="current must be a floating point.*int64"):
        neuron(torch.zeros(4, 2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="current must be a torch.Tensor"):
        neuron([[0.0]])


def test_batch_change_without_reset_raises():
    lif = LIF(3)
    lif(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch of 2 samples but got a batch of 5.*reset"):
        lif(torch.zeros(5, 3))
    lif.reset()
    lif(torch.zeros(5, 3))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_dt_raises(value):
    for neuron in (LIF(2), ALIF(2), Izhikevich(2)):
        with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
            neuron.dt = value


@pytest.mark.parametrize("value", [0.0, -5.0, float("nan")])
def test_bad_time_constants_raise(value):
    with pytest.raises(ValueError, match=rf"tau_membrane must be .*> 0, got {value}"):
        LIF(2, tau_membrane=value)
    with pytest.raises(ValueError, match=rf"tau_membrane must be .*> 0, got {value}"):
        ALIF(2, tau_membrane=value)
    with pytest.raises(ValueError, match=rf"tau_theta must be .*> 0, got {value}"):
        ALIF(2, tau_theta=value)


def test_other_bad_parameters_raise():
    with pytest.raises(ValueError, match="threshold_voltage must be above reset_voltage=-50"):
        LIF(2, reset_voltage=-50.0, threshold_voltage=-55.0)
    with pytest.raises(ValueError, match="refractory_period must be .*>= 0, got -1"):
        LIF(2, refractory_period=-1.0)
    with pytest.raises(ValueError, match="shape must be a positive int.*got \\(2, 0\\)"):
        LIF((2, 0))
    with pytest.raises(ValueError, match="batch_reduction must be 'mean' or 'sum', got 'max'"):
        ALIF(2, batch_reduction="max")
    with pytest.raises(ValueError, match="theta_plus must be .*>= 0, got -0.1"):
        ALIF(2, theta_plus=-0.1)
    with pytest.raises(TypeError, match="tau_membrane must be a real number, got 'fast'"):
        LIF(2, tau_membrane="fast")


def test_izhikevich_refractory_holds_voltage_at_reset():
    neuron = Izhikevich(1, refractory_period=1.5)
    neuron.dt = 0.5
    huge = torch.full((1, 1), 1e4)
    assert not neuron(torch.zeros(1, 1)).any()
    assert neuron(huge).all()
    for _ in range(3):  # 1.5 ms at dt = 0.5 ms
        assert not neuron(huge).any()
        assert neuron.voltage.item() == -65.0
    assert neuron(huge).all()
