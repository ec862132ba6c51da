"""Neuron dynamics as pure step functions, and QIF, the model that shows what a new neuron
costs: a step function and a wrapper (tested against a brute-force Euler loop and the closed
form of its first spike)."""

from __future__ import annotations

import math

import pytest
import torch

from celltrain.neural import ALIF, LIF, QIF, Izhikevich
from celltrain.neural.functional import (
    IzhikevichConstants,
    alif_step,
    izhikevich_step,
    lif_constants,
    lif_step,
)

KW = dict(
    tau_membrane=15.0,
    rest_voltage=-65.0,
    reset_voltage=-70.0,
    threshold_voltage=-55.0,
    refractory_period=2.0,
    resistance=2.0,
)


def test_lif_step_is_pure_and_is_what_the_module_does(float64):
    g = torch.Generator().manual_seed(0)
    lif = LIF((2, 3), **KW)
    lif.dt = 0.5
    current = torch.rand(4, 2, 3, generator=g) * 20.0
    lif(current)  # state exists
    for _ in range(20):
        voltage, refractory = lif.voltage.clone(), lif.refractory.clone()
        c = lif_constants(dt=0.5, **KW, like=voltage)
        spike, v, r = lif_step(current, voltage, refractory, c)
        assert torch.equal(voltage, lif.voltage) and torch.equal(refractory, lif.refractory)
        assert torch.equal(lif(current), spike)
        assert torch.equal(lif.voltage, v) and torch.equal(lif.refractory, r)


def test_alif_step_is_pure_and_is_what_the_module_does(float64):
    alif = ALIF(5, theta_plus=0.5, tau_theta=40.0, **KW)
    current = torch.linspace(5.0, 30.0, 5).expand(3, 5)
    alif(current)
    for _ in range(30):
        state = (alif.voltage.clone(), alif.refractory.clone(), alif.adaptation.clone())
        c = lif_constants(dt=1.0, **KW, like=state[0])
        spike, *new = alif_step(current, *state, c, -math.expm1(-1.0 / 40.0), 0.5)
        assert torch.equal(state[2], alif.adaptation)  # inputs untouched
        assert torch.equal(alif(current), spike)
        for got, want in zip((alif.voltage, alif.refractory, alif.adaptation), new):
            assert torch.equal(got, want)


def test_izhikevich_step_is_what_the_module_does(float64):
    neuron = Izhikevich(4, refractory_period=1.0)
    neuron.dt = 0.5
    current = torch.tensor([[0.0, 5.0, 10.0, 20.0]])
    neuron(current)
    c = IzhikevichConstants(a=0.02, b=0.2, c=-65.0, d=8.0, resistance=1.0, peak=30.0,
                            refractory_period=1.0, dt=0.5)  # fmt: skip
    fired = 0
    for _ in range(400):
        state = (neuron.voltage.clone(), neuron.recovery.clone(), neuron.refractory.clone())
        want = izhikevich_step(current, *state, c)
        spike = neuron(current)
        assert torch.equal(spike, want[0])
        for got, expected in zip((neuron.voltage, neuron.recovery, neuron.refractory), want[1:]):
            assert torch.equal(got, expected)
        fired += int(spike.sum())
    assert fired > 5


# ---------------------------------------------------------------------------------------- QIF

QIF_KW = dict(
    tau_membrane=10.0,
    sharpness=0.2,
    rest_voltage=-65.0,
    critical_voltage=-50.0,
    peak_voltage=0.0,
    reset_voltage=-70.0,
    resistance=1.0,
)


def euler_qif(currents, dt, *, refractory_period=0.0):
    """Brute-force forward Euler of the QIF, one neuron at a time, in Python floats."""
    out = []
    for column in currents.t().tolist():
        v, held, spikes, trace = QIF_KW["rest_voltage"], 0.0, [], []
        for current in column:
            if held > 1e-3 * dt:
                new_v = v
            else:
                drive = (
                    QIF_KW["sharpness"]
                    * (v - QIF_KW["rest_voltage"])
                    * (v - QIF_KW["critical_voltage"])
                    + QIF_KW["resistance"] * current
                )
                new_v = v + dt / QIF_KW["tau_membrane"] * drive
            spike = new_v >= QIF_KW["peak_voltage"] and not held > 1e-3 * dt
            held = refractory_period if spike else max(held - dt, 0.0)
            v = QIF_KW["reset_voltage"] if spike else new_v
            spikes.append(spike)
            trace.append(v)
        out.append((spikes, trace))
    return out


@pytest.mark.parametrize(("dt", "refractory"), [(0.1, 0.0), (0.25, 1.0), (0.05, 2.0)])
def test_qif_matches_a_brute_force_euler_loop(float64, dt, refractory):
    g = torch.Generator().manual_seed(1)
    steps = int(100 / dt)
    currents = torch.rand(steps, 6, generator=g, dtype=torch.float64) * 30.0
    qif = QIF(6, refractory_period=refractory, **QIF_KW)
    qif.dt = dt
    spikes, voltages = [], []
    for t in range(steps):
        spikes.append(qif(currents[t].unsqueeze(0))[0])
        voltages.append(qif.voltage[0].clone())
    spikes, voltages = torch.stack(spikes), torch.stack(voltages)
    reference = euler_qif(currents, dt, refractory_period=refractory)
    assert spikes.sum() > 10
    for i, (ref_spikes, ref_trace) in enumerate(reference):
        assert spikes[:, i].tolist() == ref_spikes
        torch.testing.assert_close(
            voltages[:, i], torch.tensor(ref_trace, dtype=torch.float64), rtol=0, atol=1e-9
        )


def qif_first_spike_time(current):
    """Closed form: with ``w = v - (rest + critical) / 2`` and ``h = (critical - rest) / 2``,
    ``tau dw/dt = a (w^2 + omega^2)``, ``omega^2 = R I / a - h^2``, so
    ``w(t) = omega tan(a omega t / tau + atan(w0 / omega))``."""
    a, tau = QIF_KW["sharpness"], QIF_KW["tau_membrane"]
    middle = (QIF_KW["rest_voltage"] + QIF_KW["critical_voltage"]) / 2
    half = (QIF_KW["critical_voltage"] - QIF_KW["rest_voltage"]) / 2
    omega = math.sqrt(QIF_KW["resistance"] * current / a - half**2)
    w0, w_peak = QIF_KW["rest_voltage"] - middle, QIF_KW["peak_voltage"] - middle
    return tau / (a * omega) * (math.atan(w_peak / omega) - math.atan(w0 / omega))


@pytest.mark.parametrize("current", [15.0, 25.0, 60.0])
def test_qif_first_spike_converges_to_the_closed_form(float64, current):
    expected = qif_first_spike_time(current)
    errors = []
    for dt in (0.02, 0.005):
        qif = QIF(1, **QIF_KW)
        qif.dt = dt
        drive = torch.full((1, 1), current, dtype=torch.float64)
        step = next(n for n in range(int(10 * expected / dt)) if qif(drive).item())
        errors.append(abs((step + 1) * dt - expected) / expected)
    assert errors[1] < 0.01
    assert errors[1] < errors[0]  # forward Euler converges as dt shrinks


def test_qif_below_rheobase_settles_at_the_stable_fixed_point(float64):
    a, half = QIF_KW["sharpness"], 7.5
    current = 0.5 * a * half**2  # below the rheobase a h^2 / R
    qif = QIF(1, **QIF_KW)
    qif.dt = 0.1
    drive = torch.full((1, 1), current, dtype=torch.float64)
    assert not any(qif(drive).item() for _ in range(5000))
    middle = -57.5
    fixed = middle - math.sqrt(half**2 - current / a)
    assert qif.voltage.item() == pytest.approx(fixed, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "value"),
    [("tau_membrane", 0.0), ("sharpness", -1.0), ("rest_voltage", math.inf), ("resistance", 0)],
)
def test_qif_rejects_bad_parameters(name, value):
    with pytest.raises(ValueError, match=name):
        QIF(1, **{**QIF_KW, name: value})
