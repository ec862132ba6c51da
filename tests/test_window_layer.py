"""Multi-step simulation: ``Layer.run``, ``Synapse.run`` and ``Connection.run`` against the
per-step path (``T`` calls of ``forward``), window correlations, the fused recurrent current,
Lateral's cached masked weight, and LIF refractoriness in closed form."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from celltrain.neural import (
    ALIF,
    LIF,
    Conv2d,
    DeltaCurrent,
    Direct,
    ExponentialCurrent,
    Lateral,
    Layer,
    Linear,
    diehl_cook_layer,
)
from celltrain.observe import EMA, Count, History, Latest, Mean, Monitor, Sum, Trace

TOL = {"rtol": 1e-10, "atol": 1e-10}


# ---- helpers -----------------------------------------------------------------------------------
def diehl_cook(seed, inputs=30, neurons=20, learning=True):
    """A Diehl & Cook layer whose ALIF learns its threshold (as under a trainer in training
    mode), unless ``learning`` is False."""
    torch.manual_seed(seed)
    layer = diehl_cook_layer(inputs, neurons, 1.0, weight_total=20.0)
    layer.neurons["exc"].learning = learning
    return layer


def exponential_layer(seed, n=12, inputs=16):
    """Exponential synapses on the input and on exc -> inh, biases on the input and on the
    recurrent inh -> exc Linear (which then takes the unfused accumulate path)."""
    torch.manual_seed(seed)
    layer = Layer(
        {
            "exc": LIF(n, tau_membrane=10.0, refractory_period=2.0),
            "inh": LIF(n, tau_membrane=5.0),
        },
        {
            "in": (
                "input",
                "exc",
                Linear(
                    inputs,
                    n,
                    synapse=ExponentialCurrent(4.0, 1.5),
                    bias=True,
                    weight_range=(0.0, 3.0),
                ),
            ),
            "ei": (
                "exc",
                "inh",
                Direct(n, weight_range=(60.0, 60.0), synapse=ExponentialCurrent(2.0)),
            ),
            "ie": ("inh", "exc", Linear(n, n, weight_range=(-20.0, 0.0), bias=True)),
        },
    )
    with torch.no_grad():
        layer.connections["in"].bias.uniform_(0.0, 2.0)
        layer.connections["ie"].bias.uniform_(-1.0, 1.0)
    return layer


def conv_layer(seed):
    """A Conv2d input (stride 2, padding 1, bias) into (2, 4, 4) maps with lateral inhibition."""
    torch.manual_seed(seed)
    return Layer(
        {"maps": LIF((2, 4, 4), tau_membrane=10.0, refractory_period=1.0)},
        {
            "conv": (
                "input",
                "maps",
                Conv2d((2, 7, 7), 2, 3, stride=2, padding=1, weight_range=(0.0, 12.0), bias=True),
            ),
            "lat": ("maps", "maps", Lateral((2, 4, 4), weight_range=(-3.0, 0.0))),
        },
    )


def two_input_layer(seed):
    """Two external inputs driving one population, plus a silent population without input
    connections (it steps on the resting current)."""
    torch.manual_seed(seed)
    return Layer(
        {"post": LIF(4, tau_membrane=5.0, refractory_period=1.0), "idle": LIF(2)},
        {
            "a": ("x", "post", Linear(3, 4, weight_range=(0.0, 20.0))),
            "b": ("y", "post", Linear(2, 4, weight_range=(0.0, 20.0), synapse=DeltaCurrent(2.0))),
            "c": ("idle", "post", Linear(2, 4)),
        },
        inputs=("x", "y"),
    )


def input_spikes(seed, steps, batch, shape, rate=0.25):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((steps, batch, *shape), generator=g) < rate


def stepwise(layer, **inputs):
    """``T`` calls of ``layer(...)``; the spikes of every step ``(T, B, ...)``."""
    steps = next(iter(inputs.values())).shape[0]
    outs = [layer(**{name: x[t] for name, x in inputs.items()}) for t in range(steps)]
    return {name: torch.stack([out[name] for out in outs]) for name in layer.neurons}


def count_forward_calls(layer):
    """Make ``layer.forward`` count its calls (an instance attribute, not a hook)."""
    calls = []
    original = layer.forward

    def forward(**inputs):
        calls.append(1)
        return original(**inputs)

    layer.forward = forward
    return calls


def assert_spikes_equal(got, want):
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == torch.bool
        assert torch.equal(got[name], want[name]), name


def assert_layers_match(a, b):
    """Same neuron state, ALIF adaptation and pending theta, and synapse state."""
    for name, neuron in a.neurons.items():
        other = b.neurons[name]
        assert torch.equal(neuron.spike, other.spike), name
        torch.testing.assert_close(neuron.voltage, other.voltage, **TOL)
        torch.testing.assert_close(neuron.refractory, other.refractory, **TOL)
        if isinstance(neuron, ALIF):
            torch.testing.assert_close(neuron.adaptation, other.adaptation, **TOL)
            torch.testing.assert_close(neuron.updater.theta.pos, other.updater.theta.pos, **TOL)
            torch.testing.assert_close(neuron.updater.theta.neg, other.updater.theta.neg, **TOL)
    for name, connection in a.connections.items():
        other = b.connections[name]
        assert torch.equal(connection.synapse.spike, other.synapse.spike), name
        torch.testing.assert_close(connection.synapse.current, other.synapse.current, **TOL)


MONITORS = {
    "exc_trace": (lambda: Trace(5.0, amplitude=0.5), "neurons.exc.spike"),
    "exc_count": (Count, "neurons.exc.spike"),
    "exc_history": (lambda: History(7), "neurons.exc.spike"),
    "inh_trace_nearest": (lambda: Trace(3.0, mode="nearest"), "neurons.inh.spike"),
    "input_trace": (lambda: Trace(10.0, amplitude=2.0), "connections.input_exc.synapse.spike"),
    "input_history": (lambda: History(100), "connections.input_exc.synapse.spike"),
    "voltage_history": (lambda: History(10), "neurons.exc.voltage"),
    "voltage_sum": (Sum, "neurons.exc.voltage"),
    "refractory_mean": (Mean, "neurons.exc.refractory"),
    "adaptation": (Latest, "neurons.exc.adaptation"),
    "adaptation_ema": (lambda: EMA(0.2), "neurons.exc.adaptation"),
    "recurrent_current": (lambda: History(5), "connections.inh_exc.synapse.current"),
    "recurrent_spike": (lambda: Trace(4.0), "connections.exc_inh.synapse.spike"),
}


def attach(layer, names=MONITORS):
    return {name: Monitor(MONITORS[name][0](), layer, MONITORS[name][1]) for name in names}


def assert_monitors_match(got, want):
    for name, monitor in want.items():
        other = got[name]
        assert other.reducer.steps == monitor.reducer.steps, name
        a, b = other.peek(), monitor.peek()
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if a.is_floating_point():
            torch.testing.assert_close(a, b, **TOL)
        else:
            assert torch.equal(a, b), name


# ---- Layer.run against the per-step loop ------------------------------------------------------
@pytest.mark.parametrize(
    ("seed", "batch", "steps"), [(0, 3, 60), (1, 1, 45), (2, 5, 33), (3, 9, 40)]
)
def test_run_equals_per_step_forward_with_monitors(float64, seed, batch, steps):
    window, loop = diehl_cook(seed), diehl_cook(seed)
    window_monitors, loop_monitors = attach(window), attach(loop)
    x = input_spikes(seed, steps, batch, (30,))
    calls = count_forward_calls(window)
    per_step_trace = []
    want = {}
    for t in range(steps):
        for name, spikes in loop(input=x[t]).items():
            want.setdefault(name, []).append(spikes)
        per_step_trace.append(loop_monitors["exc_trace"].peek().clone())
    want = {name: torch.stack(values) for name, values in want.items()}
    got = window.run(input=x)
    assert not calls  # the window path, not a fallback to forward()
    assert got["exc"].shape == (steps, batch, 20)
    assert want["exc"].any() and want["inh"].any()  # the network is active
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)
    assert window.neurons["exc"].updater.theta.pos.any()  # training mode learned theta
    assert_monitors_match(window_monitors, loop_monitors)
    # a window monitor's recent() holds every step of the run
    torch.testing.assert_close(
        window_monitors["exc_trace"].recent(), torch.stack(per_step_trace), **TOL
    )
    for name in ("exc_history", "input_history", "voltage_history", "recurrent_current"):
        torch.testing.assert_close(
            window_monitors[name].view(), loop_monitors[name].view(), rtol=1e-10, atol=1e-10
        )


def test_run_without_learning_leaves_theta_alone(float64):
    window, loop = diehl_cook(3, learning=False), diehl_cook(3, learning=False)
    x = input_spikes(3, 40, 2, (30,))
    assert_spikes_equal(window.run(input=x), stepwise(loop, input=x))
    assert_layers_match(window, loop)
    exc = window.neurons["exc"]
    assert exc.adaptation.any()  # the threshold adapted within the sample...
    assert not exc.updater.theta.pos.any() and not exc.updater.theta.neg.any()  # ...not learned
    assert exc._window_start is None


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("seed", "batch"), [(6, 1), (7, 12)])
def test_run_learns_theta_as_per_step_calls_do(float64, reduction, seed, batch):
    window, loop = diehl_cook(seed), diehl_cook(seed)
    theta = torch.rand(20, generator=torch.Generator().manual_seed(seed)) * 3.0
    for layer in (window, loop):
        layer.neurons["exc"].batch_reduction = reduction
        with torch.no_grad():
            layer.neurons["exc"].theta.copy_(theta)  # decays between spikes
    x = input_spikes(seed, 80, batch, (30,), rate=0.4)
    assert_spikes_equal(window.run(input=x), stepwise(loop, input=x))
    assert loop.neurons["exc"].updater.theta.pos.any()
    assert loop.neurons["exc"].updater.theta.neg.any()
    assert_layers_match(window, loop)


def test_run_stopped_by_an_error_learns_theta_from_the_steps_taken(float64):
    """An error in step 7 (in the inhibitory population, stepped after the excitatory one):
    the excitatory ALIF took 8 steps, and learns exactly what 8 per-step calls learn."""
    window, loop = diehl_cook(5), diehl_cook(5)
    x = input_spikes(5, 30, 4, (30,))
    inh = window.neurons["inh"]
    taken = []
    original = inh.advance

    def advance(current):
        if len(taken) == 7:
            raise RuntimeError("stop")
        taken.append(1)
        return original(current)

    inh.advance = advance
    with pytest.raises(RuntimeError, match="stop"):
        window.run(input=x)
    stepwise(loop, input=x[:8])
    exc, want = window.neurons["exc"], loop.neurons["exc"]
    assert want.updater.theta.pos.any()
    assert exc._window_start is None
    torch.testing.assert_close(exc.adaptation, want.adaptation, **TOL)
    torch.testing.assert_close(exc.updater.theta.pos, want.updater.theta.pos, **TOL)
    torch.testing.assert_close(exc.updater.theta.neg, want.updater.theta.neg, **TOL)


@pytest.mark.parametrize("splits", [(17,), (1, 30), (10, 11, 12)])
def test_run_split_into_windows_equals_one_run(float64, splits):
    steps = 50
    whole, parts, loop = diehl_cook(4), diehl_cook(4), diehl_cook(4)
    names = ["exc_trace", "input_trace", "exc_count", "exc_history", "voltage_history"]
    whole_monitors, part_monitors = attach(whole, names), attach(parts, names)
    x = input_spikes(4, steps, 3, (30,))
    got_whole = whole.run(input=x)
    bounds = [0, *splits, steps]
    pieces = [parts.run(input=x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    got_parts = {name: torch.cat([p[name] for p in pieces]) for name in got_whole}
    assert_spikes_equal(got_parts, got_whole)
    assert_spikes_equal(got_whole, stepwise(loop, input=x))
    assert_layers_match(parts, whole)
    assert_layers_match(whole, loop)
    assert_monitors_match(part_monitors, whole_monitors)
    last = bounds[-1] - bounds[-2]
    recent = part_monitors["exc_trace"].recent()
    assert recent.shape == (last, 3, 20)
    torch.testing.assert_close(recent, whole_monitors["exc_trace"].recent()[-last:], **TOL)


def test_run_after_per_step_calls_continues_the_state(float64):
    window, loop = diehl_cook(5), diehl_cook(5)
    x = input_spikes(5, 40, 2, (30,))
    for t in range(15):
        window(input=x[t])
    got = window.run(input=x[15:])
    want = stepwise(loop, input=x)
    assert_spikes_equal(got, {name: spikes[15:] for name, spikes in want.items()})
    assert_layers_match(window, loop)


def test_run_follows_a_change_of_dt_between_windows(float64):
    window, loop = exponential_layer(3), exponential_layer(3)
    x = input_spikes(3, 60, 3, (16,), rate=0.3)
    assert_spikes_equal(window.run(input=x[:30]), stepwise(loop, input=x[:30]))
    window.dt = loop.dt = 0.5  # neuron constants and synapse decays follow
    assert_spikes_equal(window.run(input=x[30:]), stepwise(loop, input=x[30:]))
    assert_layers_match(window, loop)


def test_run_under_inference_mode_then_outside(float64):
    """A window under ``torch.inference_mode()`` (Lightning's validation), then one outside:
    the same as the per-step path, monitors included."""
    window, loop = diehl_cook(16), diehl_cook(16)
    names = ["exc_trace", "exc_history", "input_history", "voltage_sum", "adaptation"]
    window_monitors, loop_monitors = attach(window, names), attach(loop, names)
    x = input_spikes(16, 50, 3, (30,))
    with torch.inference_mode():
        assert_spikes_equal(window.run(input=x[:25]), stepwise(loop, input=x[:25]))
    assert_spikes_equal(window.run(input=x[25:]), stepwise(loop, input=x[25:]))
    assert_layers_match(window, loop)
    assert_monitors_match(window_monitors, loop_monitors)


@pytest.mark.parametrize("seed", [0, 1])
def test_run_with_exponential_synapses_and_biases(float64, seed):
    window, loop = exponential_layer(seed), exponential_layer(seed)
    monitors = {
        "in": (lambda: Trace(6.0), "connections.in.synapse.spike"),
        "ei_current": (lambda: History(4), "connections.ei.synapse.current"),
        "voltage": (Sum, "neurons.inh.voltage"),
    }
    got_monitors = {k: Monitor(f(), window, a) for k, (f, a) in monitors.items()}
    want_monitors = {k: Monitor(f(), loop, a) for k, (f, a) in monitors.items()}
    x = input_spikes(seed, 50, 3, (16,), rate=0.3)
    calls = count_forward_calls(window)
    got = window.run(input=x)
    want = stepwise(loop, input=x)
    assert not calls
    assert want["exc"].any() and want["inh"].any()
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)
    assert_monitors_match(got_monitors, want_monitors)


def test_run_with_a_conv2d_input(float64):
    window, loop = conv_layer(6), conv_layer(6)
    got_count = Monitor(Count(), window, "neurons.maps.spike")
    want_count = Monitor(Count(), loop, "neurons.maps.spike")
    x = input_spikes(6, 40, 3, (2, 7, 7), rate=0.3)
    got = window.run(input=x)
    want = stepwise(loop, input=x)
    assert got["maps"].shape == (40, 3, 2, 4, 4)
    assert want["maps"].any()
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)
    assert torch.equal(got_count.peek(), want_count.peek())


def test_run_with_two_inputs_and_a_population_without_input(float64):
    window, loop = two_input_layer(7), two_input_layer(7)
    x, y = input_spikes(7, 30, 2, (3,)), input_spikes(8, 30, 2, (2,))
    got = window.run(x=x, y=y)
    want = stepwise(loop, x=x, y=y)
    assert want["post"].any() and not want["idle"].any()
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)


@pytest.mark.parametrize("elements", [50, 420, 1 << 30])
def test_chunked_input_precompute_gives_the_same_result(float64, elements):
    chunked, loop = diehl_cook(8), diehl_cook(8)
    chunked.window_elements = elements  # 50: one step per chunk; 420: chunks of 7 steps
    got_monitors = attach(chunked, ["exc_trace", "input_history", "adaptation"])
    want_monitors = attach(loop, ["exc_trace", "input_history", "adaptation"])
    x = input_spikes(8, 45, 3, (30,))
    got = chunked.run(input=x)
    assert_spikes_equal(got, stepwise(loop, input=x))
    assert_layers_match(chunked, loop)
    assert_monitors_match(got_monitors, want_monitors)

    exp_chunked, exp_loop = exponential_layer(9), exponential_layer(9)
    exp_chunked.window_elements = elements
    x = input_spikes(9, 45, 2, (16,), rate=0.3)
    assert_spikes_equal(exp_chunked.run(input=x), stepwise(exp_loop, input=x))
    assert_layers_match(exp_chunked, exp_loop)


# ---- fallback to per-step forward ---------------------------------------------------------------
def test_plain_hook_on_a_neuron_makes_run_step_by_step(float64):
    window, loop = diehl_cook(10), diehl_cook(10)
    seen = []
    window.neurons["exc"].register_forward_hook(lambda m, args, out: seen.append(out.clone()))
    monitor = Monitor(Trace(5.0), window, "neurons.exc.spike")
    want_monitor = Monitor(Trace(5.0), loop, "neurons.exc.spike")
    x = input_spikes(10, 30, 2, (30,))
    calls = count_forward_calls(window)
    got = window.run(input=x)
    want = stepwise(loop, input=x)
    assert len(calls) == 30 and len(seen) == 30
    assert torch.equal(torch.stack(seen), want["exc"])
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)
    assert_monitors_match({"m": monitor}, {"m": want_monitor})
    assert monitor.recent().shape == (1, 2, 20)  # recorded step by step


@pytest.mark.parametrize("kind", ["forward_hook", "forward_pre_hook", "global_hook"])
def test_plain_hook_on_the_layer_makes_run_step_by_step(float64, kind):
    window, loop = diehl_cook(11), diehl_cook(11)
    seen = []
    if kind == "forward_hook":
        handle = window.register_forward_hook(lambda m, args, out: seen.append(out["exc"]))
    elif kind == "forward_pre_hook":
        handle = window.register_forward_pre_hook(lambda m, args: seen.append(args))
    else:
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, args, out: seen.append(m) if m is window else None
        )
    try:
        x = input_spikes(11, 25, 2, (30,))
        got = window.run(input=x)
    finally:
        handle.remove()
    want = stepwise(loop, input=x)
    assert len(seen) == 25
    if kind == "forward_hook":
        assert torch.equal(torch.stack(seen), want["exc"])
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)


def test_monitor_of_an_input_synapse_current_makes_run_step_by_step(float64):
    window, loop = exponential_layer(12), exponential_layer(12)
    got_monitor = Monitor(History(50), window, "connections.in.synapse.current")
    want_monitor = Monitor(History(50), loop, "connections.in.synapse.current")
    x = input_spikes(12, 30, 2, (16,), rate=0.3)
    calls = count_forward_calls(window)
    got = window.run(input=x)
    want = stepwise(loop, input=x)
    assert len(calls) == 30
    assert_spikes_equal(got, want)
    assert_layers_match(window, loop)
    torch.testing.assert_close(got_monitor.view(), want_monitor.view(), **TOL)

    dc_window, dc_loop = diehl_cook(12), diehl_cook(12)
    got_monitor = Monitor(Sum(), dc_window, "connections.input_exc.synapse.current")
    want_monitor = Monitor(Sum(), dc_loop, "connections.input_exc.synapse.current")
    x = input_spikes(13, 30, 2, (30,))
    calls = count_forward_calls(dc_window)
    assert_spikes_equal(dc_window.run(input=x), stepwise(dc_loop, input=x))
    assert len(calls) == 30
    torch.testing.assert_close(got_monitor.peek(), want_monitor.peek(), **TOL)


def test_monitor_subclass_with_its_own_record_makes_run_step_by_step(float64):
    class Recording(Monitor):
        def record(self, value=None):
            self.calls = getattr(self, "calls", 0) + 1
            super().record(value)

    window, loop = diehl_cook(13), diehl_cook(13)
    monitor = Recording(Count(), window, "neurons.exc.spike")
    want_monitor = Monitor(Count(), loop, "neurons.exc.spike")
    x = input_spikes(14, 20, 2, (30,))
    got = window.run(input=x)
    assert monitor.calls == 20
    assert_spikes_equal(got, stepwise(loop, input=x))
    assert torch.equal(monitor.peek(), want_monitor.peek())


def test_deregistered_and_collected_monitors_keep_the_window_path(float64):
    window, loop = diehl_cook(14), diehl_cook(14)
    kept = Monitor(Count(), window, "neurons.exc.spike").deregister()
    Monitor(Count(), window, "neurons.inh.spike")  # collected at once: its hook goes inert
    x = input_spikes(15, 20, 2, (30,))
    calls = count_forward_calls(window)
    assert_spikes_equal(window.run(input=x), stepwise(loop, input=x))
    assert not calls
    assert kept.peek() is None


# ---- errors ----------------------------------------------------------------------------------
def test_run_rejects_bad_inputs():
    layer = diehl_cook(15)
    x = input_spikes(0, 5, 2, (30,))
    with pytest.raises(ValueError, match="run\\(\\) takes exactly the inputs"):
        layer.run(inputs=x)
    with pytest.raises(ValueError, match="run\\(\\) takes exactly the inputs"):
        layer.run()
    with pytest.raises(ValueError, match="T >= 1"):
        layer.run(input=x[:0])
    with pytest.raises(ValueError, match="T >= 1"):
        layer.run(input=x[0, 0])
    with pytest.raises(TypeError, match="input_exc"):
        layer.run(input=x.float())
    with pytest.raises(ValueError, match="input_exc"):
        layer.run(input=input_spikes(0, 5, 2, (31,)))
    two = two_input_layer(0)
    with pytest.raises(ValueError, match="same \\(T, B\\)"):
        two.run(x=input_spikes(0, 5, 2, (3,)), y=input_spikes(0, 6, 2, (2,)))
    with pytest.raises(ValueError, match="same \\(T, B\\)"):
        two.run(x=input_spikes(0, 5, 2, (3,)), y=input_spikes(0, 5, 3, (2,)))
    with pytest.raises(ValueError, match="takes exactly"):
        two.run(x=input_spikes(0, 5, 2, (3,)))
    # a batch of another size without reset()
    layer.run(input=x)
    with pytest.raises(ValueError, match="reset"):
        layer.run(input=input_spikes(0, 5, 3, (30,)))
    layer.reset()
    assert layer.run(input=input_spikes(0, 5, 3, (30,)))["exc"].shape == (5, 3, 20)


# ---- Synapse.run / Connection.run ---------------------------------------------------------------
@pytest.mark.parametrize(
    "factory",
    [
        lambda: DeltaCurrent(),
        lambda: DeltaCurrent(amplitude=2.5),
        lambda: ExponentialCurrent(tau=3.0, amplitude=0.8),
        lambda: ExponentialCurrent(tau=20.0),
    ],
)
def test_synapse_run_equals_per_step_forward(float64, factory):
    window, loop = factory(), factory()
    window.dt = loop.dt = 0.5
    spikes = input_spikes(20, 40, 3, (5,), rate=0.4)
    for part in (spikes[:25], spikes[25:]):  # two windows: the state carries over
        got = window.run(part)
        want = torch.stack([loop(s).clone() for s in part])
        assert got.shape == part.shape and got.dtype == torch.float64
        torch.testing.assert_close(got, want, **TOL)
        assert torch.equal(window.spike, loop.spike)
        torch.testing.assert_close(window.current, loop.current, **TOL)
    with pytest.raises(ValueError, match="T >= 1"):
        window.run(spikes[:0])
    with pytest.raises(ValueError, match="T >= 1"):
        window.run(spikes[0, 0])
    with pytest.raises(TypeError, match="bool"):
        window.run(spikes.double())


@pytest.mark.parametrize(
    ("tau", "dtype"),
    [(0.01, torch.float64), (0.01, torch.float32), (0.001, torch.float64)],
    ids=["tau0.01-float64", "tau0.01-float32", "tau0.001-float64"],
)
def test_exponential_synapse_with_tau_much_shorter_than_dt(tau, dtype):
    """``tau`` far below ``dt`` (1 ms): the current decays to practically nothing within a
    step; the per-step path stays finite and ``run`` must give the same currents (float32
    with ``exp(-100)``; float64 with ``exp(-1000)``, which is 0.0)."""
    window, loop = ExponentialCurrent(tau=tau), ExponentialCurrent(tau=tau)
    window.current = torch.empty(0, dtype=dtype)
    loop.current = torch.empty(0, dtype=dtype)
    spikes = torch.tensor([[[True, False]], [[False, False]], [[True, True]]])
    want = torch.stack([loop(s) for s in spikes])
    assert torch.isfinite(want).all()
    got = window.run(spikes)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-30)


CONNECTIONS = {
    "linear_exponential_bias": lambda: Linear(
        6, 4, synapse=ExponentialCurrent(4.0, 1.5), bias=True, weight_range=(-1.0, 1.0)
    ),
    "linear_delta_amplitude": lambda: Linear((2, 3), (2, 2), synapse=DeltaCurrent(3.0)),
    "lateral": lambda: Lateral(5, synapse=ExponentialCurrent(2.0)),
    "direct": lambda: Direct((2, 3), synapse=ExponentialCurrent(6.0, 0.5)),
    "conv2d": lambda: Conv2d((2, 7, 7), 3, 3, stride=2, padding=1, bias=True),
    "conv2d_exponential": lambda: Conv2d((1, 5, 6), 2, (2, 3), synapse=ExponentialCurrent(3.0)),
}


def _randomise(connection, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in connection.parameters():
            param.copy_(torch.randn(param.shape, generator=g))
        if isinstance(connection, Lateral):
            connection.weight.mul_(connection.mask)


@pytest.mark.parametrize("name", sorted(CONNECTIONS))
def test_connection_run_equals_per_step_forward(float64, name):
    window = CONNECTIONS[name]()
    _randomise(window, 1)
    loop = copy.deepcopy(window)
    spikes = input_spikes(21, 30, 3, window.in_shape, rate=0.4)
    for part in (spikes[:12], spikes[12:]):
        got = window.run(part)
        want = torch.stack([loop(s) for s in part])
        assert got.shape == (part.shape[0], 3, *window.out_shape)
        torch.testing.assert_close(got, want, **TOL)
        assert torch.equal(window.synapse.spike, loop.synapse.spike)
        torch.testing.assert_close(window.synapse.current, loop.synapse.current, **TOL)
    with pytest.raises(ValueError):
        window.run(input_spikes(0, 3, 3, (7,)))
    with pytest.raises(ValueError, match="T >= 1"):
        window.run(spikes[:0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["linear_delta_amplitude", "lateral", "direct", "conv2d"])
@pytest.mark.parametrize("steps", [1, 9])
def test_correlate_window_is_the_sum_of_per_step_correlations(float64, name, reduction, steps):
    connection = CONNECTIONS[name]()
    g = torch.Generator().manual_seed(steps)
    batch = 3
    post = torch.rand((steps, batch, *connection.out_shape), generator=g)
    pre = torch.rand((steps, batch, *connection.in_shape), generator=g)
    got = connection.correlate_window(post, pre, reduction)
    want = sum(connection.correlate(post[t], pre[t], reduction) for t in range(steps))
    shape = connection.weight.shape if reduction != "none" else (batch, *connection.weight.shape)
    assert got.shape == shape
    torch.testing.assert_close(got, want, **TOL)
    # bool spikes as post (how STDP calls it)
    spikes = post > 0.5
    torch.testing.assert_close(
        connection.correlate_window(spikes, pre, reduction),
        sum(connection.correlate(spikes[t], pre[t], reduction) for t in range(steps)),
        **TOL,
    )


def test_correlate_window_rejects_mismatched_windows():
    connection = Linear(3, 2)
    with pytest.raises(ValueError, match="same T and B"):
        connection.correlate_window(torch.rand(4, 2, 2), torch.rand(5, 2, 3))
    with pytest.raises(ValueError, match="same T and B"):
        connection.correlate_window(torch.rand(4, 2, 2), torch.rand(4, 3, 3))
    with pytest.raises(ValueError, match="reduction"):
        connection.correlate_window(torch.rand(4, 2, 2), torch.rand(4, 2, 3), "max")
    with pytest.raises(ValueError, match="reduction"):
        connection.correlate_window(torch.rand(1, 2, 2), torch.rand(1, 2, 3), "max")


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Linear(6, 4),
        lambda: Linear(6, 4, synapse=ExponentialCurrent(3.0, 2.0)),
        lambda: Linear(6, 4, bias=True),
        lambda: Linear(6, (2, 2)),
        lambda: Lateral(6, synapse=DeltaCurrent(1.5)),
        lambda: Direct(6),
    ],
)
def test_accumulate_is_total_plus_forward(float64, factory):
    fused = factory()
    _randomise(fused, 2)
    plain = copy.deepcopy(fused)
    spikes = input_spikes(22, 8, 3, fused.in_shape, rate=0.5)
    fused.synapse.prepare("spike", spikes[0])
    g = torch.Generator().manual_seed(3)
    for t, spike in enumerate(spikes):
        total = None if t == 0 else torch.randn((3, *fused.out_shape), generator=g)
        before = None if total is None else total.clone()
        got = fused.accumulate(total, spike)
        want = plain(spike) if total is None else total + plain(spike)
        torch.testing.assert_close(got, want, **TOL)
        if total is not None:
            assert torch.equal(total, before)  # the total is not modified in place
        assert torch.equal(fused.synapse.spike, plain.synapse.spike)
        torch.testing.assert_close(fused.synapse.current, plain.synapse.current, **TOL)


def _masked_product(lateral, spike):
    weight = lateral.weight.detach()
    weight = weight * (1 - torch.eye(weight.shape[0], dtype=weight.dtype))
    return spike.to(weight.dtype) @ weight.t()


def test_lateral_cached_weight_follows_in_place_edits_and_loads(float64):
    lateral = Lateral(4)
    spike = torch.tensor([[True, True, False, True], [True, True, True, True]])
    torch.testing.assert_close(lateral(spike), _masked_product(lateral, spike))
    with torch.no_grad():
        lateral.weight.mul_(2.0)
    torch.testing.assert_close(lateral(spike), _masked_product(lateral, spike))
    with torch.no_grad():
        lateral.weight.fill_(1.5)  # a non-zero diagonal links no self in propagation
    torch.testing.assert_close(lateral(spike), _masked_product(lateral, spike))
    assert torch.equal(lateral(spike)[1], torch.full((4,), 4.5))
    state = lateral.state_dict()
    state["weight"] = torch.arange(16.0).view(4, 4)
    lateral.load_state_dict(state)
    torch.testing.assert_close(lateral(spike), _masked_product(lateral, spike))
    lateral.float()  # replaced by .to(): the cache follows
    got = lateral(spike)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, _masked_product(lateral, spike))
    # the fused recurrent path of Layer.run reads the same cache
    lateral.double()
    lateral.synapse.reset()
    lateral.synapse.prepare("spike", spike)
    with torch.no_grad():
        lateral.weight.add_(1.0)
    total = torch.ones(2, 4)
    torch.testing.assert_close(
        lateral.accumulate(total, spike), total + _masked_product(lateral, spike)
    )


def test_lateral_cached_weight_follows_edits_through_data(float64):
    """``param.data`` edits in place without bumping the parameter's version counter."""
    lateral = Lateral(3, weight=torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]]))
    spike = torch.ones(1, 3, dtype=torch.bool)
    lateral(spike)
    lateral.weight.data.mul_(2.0)
    torch.testing.assert_close(lateral(spike), torch.tensor([[6.0, 14.0, 22.0]]).double())


def test_lateral_built_under_inference_mode_can_step():
    """A Lateral made under ``torch.inference_mode()`` (its weight is an inference tensor,
    which has no version counter) steps like any connection."""
    with torch.inference_mode():
        lateral = Lateral(
            3, weight=torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
        )
        got = lateral(torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(got, torch.tensor([[3.0, 7.0, 11.0]]))


# ---- LIF refractoriness in closed form ----------------------------------------------------------
def lif_reference(steps, current, dt, tau, rest, reset, threshold, refractory, resistance=1.0):
    """Voltage and spikes of one LIF neuron under a constant current, written out: integrate
    exactly, spike at threshold, sit at reset for ceil(refractory / dt) steps."""
    decay = math.exp(-dt / tau)
    hold_steps = math.ceil(refractory / dt - 1e-6)
    voltages, spikes = [], []
    v, held = rest, 0
    for _ in range(steps):
        if held:
            v, spike = reset, False
            held -= 1
        else:
            v = rest + (v - rest) * decay + resistance * current * (1 - decay)
            spike = v >= threshold
            if spike:
                v, held = reset, hold_steps
        voltages.append(v)
        spikes.append(spike)
    return torch.tensor(voltages), torch.tensor(spikes)


@pytest.mark.parametrize(
    ("dt", "refractory"), [(1.0, 3.0), (1.0, 0.0), (0.5, 1.5), (0.5, 1.2), (0.25, 2.0)]
)
def test_lif_holds_reset_for_the_refractory_steps(float64, dt, refractory):
    params = dict(
        tau_membrane=5.0, rest_voltage=-65.0, reset_voltage=-60.0, threshold_voltage=-52.0
    )
    current, steps = 30.0, 80
    want_v, want_s = lif_reference(steps, current, dt, 5.0, -65.0, -60.0, -52.0, refractory)
    assert want_s.sum() >= 3
    neuron = LIF(1, refractory_period=refractory, **params)
    neuron.dt = dt
    voltages, spikes = [], []
    for _ in range(steps):
        spikes.append(bool(neuron(torch.full((1, 1), current))))
        voltages.append(float(neuron.voltage))
    torch.testing.assert_close(torch.tensor(voltages), want_v, rtol=1e-12, atol=1e-10)
    assert torch.equal(torch.tensor(spikes), want_s)
    # held steps sit exactly at reset_voltage, then integration starts again
    hold = math.ceil(refractory / dt - 1e-6)
    first = int(torch.nonzero(want_s)[0])
    assert all(v == -60.0 for v in voltages[first : first + hold + 1])
    assert voltages[first + hold + 1] > -60.0
    # the same neuron inside Layer.run: a Direct connection from an always-on input
    layer = Layer(
        {"n": LIF(1, refractory_period=refractory, **params)},
        {"drive": ("input", "n", Direct(1, weight=torch.full((1,), current)))},
        dt=dt,
    )
    voltage = Monitor(History(steps), layer, "neurons.n.voltage")
    out = layer.run(input=torch.ones((steps, 1, 1), dtype=torch.bool))
    assert torch.equal(out["n"].flatten(), want_s)
    torch.testing.assert_close(voltage.view().flatten(), want_v, rtol=1e-12, atol=1e-10)


def test_a_removed_hook_gives_the_window_path_back(float64):
    window, loop = diehl_cook(16), diehl_cook(16)
    handle = window.connections["inh_exc"].register_forward_hook(lambda *_: None)
    x = input_spikes(16, 12, 2, (30,))
    calls = count_forward_calls(window)
    assert_spikes_equal(window.run(input=x[:6]), stepwise(loop, input=x[:6]))
    assert len(calls) == 6  # a hook on a component: step by step
    handle.remove()
    assert not window.connections["inh_exc"].has_hooks()
    assert_spikes_equal(window.run(input=x[6:]), stepwise(loop, input=x[6:]))
    assert len(calls) == 6  # the window path again
    assert_layers_match(window, loop)


def test_a_copied_layer_starts_without_observers_and_keeps_its_hooks(float64):
    layer = diehl_cook(17)
    monitor = Monitor(Count(), layer, "neurons.exc.spike")
    seen = []
    handle = layer.neurons["exc"].register_forward_hook(lambda m, a, out: seen.append(m))
    copied = copy.deepcopy(layer)
    assert layer.observers() == [monitor] and copied.observers() == []
    copied.run(input=input_spikes(17, 5, 1, (30,)))
    assert monitor.peek() is None  # the copy never writes into the original's monitor
    assert len(seen) == 5 and seen[0] is copied.neurons["exc"]  # torch copied the hook: it ran
    handle.remove()
    assert not layer.neurons["exc"].has_hooks() and copied.neurons["exc"].has_hooks()
