"""Layer wiring, timing of recurrent inputs, dt propagation, cells, and bad input."""

from __future__ import annotations

import math
import operator

import pytest
import torch

from celltrain.neural import (
    ALIF,
    LIF,
    Cell,
    Direct,
    ExponentialCurrent,
    Izhikevich,
    Lateral,
    Layer,
    Linear,
)


def diehl_cook(n_in=6, n=4, dt=1.0):
    """input -> exc (ALIF) -> inh (LIF, one-to-one) -> exc (lateral inhibition)."""
    return Layer(
        {"exc": ALIF(n, threshold_voltage=-60.0), "inh": LIF(n, threshold_voltage=-60.0)},
        {
            "in_exc": ("input", "exc", Linear(n_in, n, weight_range=(40.0, 80.0))),
            "exc_inh": ("exc", "inh", Direct(n, weight=torch.full((n,), 30.0))),
            "inh_exc": ("inh", "exc", Lateral(n, weight=-20.0 * (1 - torch.eye(n)))),
        },
        dt=dt,
    )


def record_currents(layer):
    """Forward pre-hooks on every neuron: the current it received at each step."""
    seen = {name: [] for name in layer.neurons}
    for name, neuron in layer.neurons.items():
        neuron.register_forward_pre_hook(lambda m, args, name=name: seen[name].append(args[0]))
    return seen


def test_each_neuron_steps_exactly_once_per_call():
    layer = diehl_cook()
    calls = {name: 0 for name in layer.neurons}
    for name, neuron in layer.neurons.items():
        neuron.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    g = torch.Generator().manual_seed(0)
    fired = {name: False for name in layer.neurons}
    for t in range(1, 26):
        out = layer(input=torch.rand(3, 6, generator=g) < 0.5)
        assert calls == {"exc": t, "inh": t}
        assert set(out) == {"exc", "inh"}
        for name, spikes in out.items():
            assert spikes.dtype == torch.bool and spikes.shape == (3, 4)
            assert torch.equal(spikes, layer.neurons[name].spike)
            fired[name] |= bool(spikes.any())
    assert fired == {"exc": True, "inh": True}  # the loop is active


def test_chain_delivers_source_spikes_one_step_later():
    g = torch.Generator().manual_seed(1)
    w_ab = torch.rand(3, 5, generator=g) * 10.0
    layer = Layer(
        {"a": LIF(5, threshold_voltage=-64.0), "b": LIF(3)},
        {
            "in_a": ("input", "a", Linear(4, 5, weight_range=(0.0, 4.0))),
            "a_b": ("a", "b", Linear(5, 3, weight=w_ab)),
        },
    )
    seen = record_currents(layer)
    a_spikes = []
    for _ in range(30):
        out = layer(input=torch.rand(2, 4, generator=g) < 0.5)
        a_spikes.append(out["a"])
    assert torch.stack(a_spikes).any()
    # B's current at step t is W_ab @ A's spikes of step t - 1 (zero at the first step)
    assert torch.equal(seen["b"][0], torch.zeros(2, 3))
    for t in range(1, 30):
        expected = a_spikes[t - 1].double() @ w_ab.double().t()
        torch.testing.assert_close(seen["b"][t].double(), expected)


def test_chain_spike_reaches_b_exactly_one_step_later():
    layer = Layer(
        {"a": LIF(1), "b": LIF(1)},
        {
            "in_a": ("input", "a", Linear(1, 1, weight=torch.tensor([[1e4]]))),
            "a_b": ("a", "b", Linear(1, 1, weight=torch.tensor([[1e4]]))),
        },
    )
    pattern = [True, False, False, True, False, False, False]
    a, b = [], []
    for spike in pattern:
        out = layer(input=torch.tensor([[spike]]))
        a.append(bool(out["a"]))
        b.append(bool(out["b"]))
    assert a == pattern
    assert b == [False, *pattern[:-1]]


def test_exc_inh_exc_loop_timing():
    layer = diehl_cook(n_in=2, n=3)
    w_in = layer.connections["in_exc"].weight.detach().double()
    w_lat = layer.connections["inh_exc"].weight.detach().double()
    w_dir = layer.connections["exc_inh"].weight.detach().double()
    seen = record_currents(layer)
    g = torch.Generator().manual_seed(2)
    inputs, exc, inh = [], [], []
    for _ in range(40):
        x = torch.rand(2, 2, generator=g) < 0.6
        out = layer(input=x)
        inputs.append(x.double())
        exc.append(out["exc"].double())
        inh.append(out["inh"].double())
    assert torch.stack(inh).any() and torch.stack(exc).any()
    zero = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(40):
        prev_exc = exc[t - 1] if t else zero
        prev_inh = inh[t - 1] if t else zero
        torch.testing.assert_close(seen["inh"][t].double(), prev_exc * w_dir)
        torch.testing.assert_close(
            seen["exc"][t].double(), inputs[t] @ w_in.t() + prev_inh @ w_lat.t()
        )


def test_reset_restarts_recurrent_sources_at_zero():
    layer = diehl_cook()
    seen = record_currents(layer)
    strong = torch.ones(2, 6, dtype=torch.bool)
    for _ in range(20):  # step until exc has just fired, so its spikes are pending for inh
        if layer(input=strong)["exc"].any():
            break
    assert layer.neurons["exc"].spike.any()
    layer.reset()
    for neuron in layer.neurons.values():
        assert neuron.voltage.numel() == 0 and neuron.spike.numel() == 0
    for connection in layer.connections.values():
        assert connection.synapse.spike.numel() == 0
    layer(input=torch.zeros(2, 6, dtype=torch.bool))
    assert torch.equal(seen["inh"][-1], torch.zeros(2, 4))
    assert torch.equal(seen["exc"][-1], torch.zeros(2, 4))
    assert torch.equal(layer.neurons["exc"].voltage, torch.full((2, 4), -65.0))
    layer.reset()
    layer(input=torch.zeros(5, 6, dtype=torch.bool))  # a new batch size after reset


def test_neuron_without_connections_gets_zero_current():
    layer = Layer({"a": LIF(2), "lonely": Izhikevich(3)}, {"x": ("input", "a", Linear(1, 2))})
    seen = record_currents(layer)
    layer(input=torch.ones(4, 1, dtype=torch.bool))
    assert torch.equal(seen["lonely"][0], torch.zeros(4, 3))


def test_currents_from_several_connections_add_up():
    layer = Layer(
        {"a": LIF(2, threshold_voltage=1e6)},
        {
            "x": ("u", "a", Linear(1, 2, weight=torch.tensor([[1.0], [2.0]]))),
            "y": ("v", "a", Linear(1, 2, weight=torch.tensor([[10.0], [20.0]]))),
        },
        inputs=("u", "v"),
    )
    seen = record_currents(layer)
    layer(u=torch.tensor([[True]]), v=torch.tensor([[True]]))
    assert torch.equal(seen["a"][0], torch.tensor([[11.0, 22.0]]))


def test_dt_reaches_every_neuron_and_synapse_and_changes_decay():
    layer = Layer(
        {"a": LIF(1, tau_membrane=10.0, threshold_voltage=1e6), "b": ALIF(2), "c": Izhikevich(1)},
        {
            "x": ("input", "a", Linear(1, 1, synapse=ExponentialCurrent(tau=5.0))),
            "y": ("a", "b", Linear(1, 2)),
            "z": ("b", "c", Linear(2, 1)),
        },
        dt=2.0,
    )

    def dts():
        return [n.dt for n in layer.neurons.values()] + [
            c.synapse.dt for c in layer.connections.values()
        ]

    assert dts() == [2.0] * 6
    layer.dt = 0.25
    assert layer.dt == 0.25 and dts() == [0.25] * 6
    # the decay follows: the membrane relaxes by exp(-dt/tau) per step at the new dt
    layer(input=torch.zeros(1, 1, dtype=torch.bool))
    a = layer.neurons["a"]
    a.voltage = torch.full((1, 1), -55.0)
    layer(input=torch.zeros(1, 1, dtype=torch.bool))
    assert a.voltage.item() == pytest.approx(-65.0 + 10.0 * math.exp(-0.25 / 10.0), abs=1e-5)
    layer.dt = 4.0
    layer(input=torch.zeros(1, 1, dtype=torch.bool))
    expected = -65.0 + 10.0 * math.exp(-0.25 / 10.0) * math.exp(-4.0 / 10.0)
    assert a.voltage.item() == pytest.approx(expected, abs=1e-5)
    # and the synapse's decay too
    syn = layer.connections["x"].synapse
    layer(input=torch.ones(1, 1, dtype=torch.bool))
    layer(input=torch.zeros(1, 1, dtype=torch.bool))
    assert syn.current.item() == pytest.approx(math.exp(-4.0 / 5.0), rel=1e-6)


def test_cells():
    layer = diehl_cook()
    cell = layer.cell("in_exc")
    assert isinstance(cell, Cell)
    assert layer.cell("in_exc") is cell  # one object per connection
    assert cell.layer is layer and cell.name == "in_exc"
    assert (cell.source, cell.target) == ("input", "exc")
    assert cell.connection is layer.connections["in_exc"]
    assert cell.neuron is layer.neurons["exc"]
    assert cell.updater is layer.connections["in_exc"].updater
    assert cell.updaters == [cell.connection.updater, layer.neurons["exc"].updater]
    # a LIF target has no updater of its own
    inh_cell = layer.cell("exc_inh")
    assert inh_cell.updaters == [layer.connections["exc_inh"].updater]
    assert dict(layer.named_cells()) == {n: layer.cell(n) for n in layer.connections}
    # resolve gives paths relative to the layer, which reach the right objects
    assert cell.resolve("neuron.spike") == "neurons.exc.spike"
    assert cell.resolve("neuron") == "neurons.exc"
    assert cell.resolve("connection.synapse.spike") == "connections.in_exc.synapse.spike"
    assert cell.resolve("connection.weight") == "connections.in_exc.weight"
    layer(input=torch.ones(2, 6, dtype=torch.bool))
    assert operator.attrgetter(cell.resolve("neuron.spike"))(layer) is cell.neuron.spike
    assert operator.attrgetter(cell.resolve("neuron.theta"))(layer) is cell.neuron.theta
    with pytest.raises(AttributeError, match="'neuron.nothing' does not exist"):
        cell.resolve("neuron.nothing")
    with pytest.raises(AttributeError, match="must start with 'neuron' or 'connection'.*'layer.x'"):
        cell.resolve("layer.x")
    with pytest.raises(AttributeError, match=r"no connection 'nope' \(connections: \["):
        layer.cell("nope")


def test_cells_follow_the_layer_to_another_dtype():
    layer = diehl_cook()
    cell = layer.cell("in_exc")
    layer.double()
    assert cell.connection.weight.dtype == torch.float64
    out = layer(input=torch.ones(2, 6, dtype=torch.bool))
    assert out["exc"].dtype == torch.bool
    assert layer.neurons["exc"].voltage.dtype == torch.float64


# --------------------------------------------------------------------------------------- errors


def test_wiring_shape_mismatch_raises():
    with pytest.raises(
        ValueError,
        match=r"'a_b': in_shape \(4,\) does not match source 'a' of "
        r"shape \(3,\)",
    ):
        Layer({"a": LIF(3), "b": LIF(2)}, {"a_b": ("a", "b", Linear(4, 2))})
    with pytest.raises(
        ValueError,
        match=r"'in_b': out_shape \(3,\) does not match target 'b' "
        r"of shape \(2,\)",
    ):
        Layer({"b": LIF(2)}, {"in_b": ("input", "b", Linear(4, 3))})
    with pytest.raises(ValueError, match=r"out_shape \(2, 2\) does not match target 'b'"):
        Layer({"b": LIF(4)}, {"in_b": ("input", "b", Linear(4, (2, 2)))})


def test_unknown_names_in_wiring_raise():
    with pytest.raises(
        KeyError,
        match=r"connection 'c': target 'nobody' is not a neuron of the "
        r"layer \(neurons: \['a'\]\)",
    ):
        Layer({"a": LIF(2)}, {"c": ("input", "nobody", Linear(2, 2))})
    with pytest.raises(
        KeyError,
        match=r"connection 'c': source 'ghost' is neither a neuron "
        r"\['a'\] nor an input \['input'\]",
    ):
        Layer({"a": LIF(2)}, {"c": ("ghost", "a", Linear(2, 2))})


def test_bad_layer_construction_raises():
    with pytest.raises(TypeError, match=r"neurons\['a'\] must be a Neuron, got Linear"):
        Layer({"a": Linear(2, 2)}, {})
    with pytest.raises(TypeError, match="connection 'c' must be a Connection, got LIF"):
        Layer({"a": LIF(2)}, {"c": ("input", "a", LIF(2))})
    with pytest.raises(ValueError, match="neuron name 'input' is also an input name"):
        Layer({"input": LIF(2)}, {})
    with pytest.raises(ValueError, match=r"neuron name must be a non-empty string without '\.'"):
        Layer({"a.b": LIF(2)}, {})


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_non_positive_dt_raises(value):
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
        Layer({"a": LIF(2)}, {}, dt=value)
    layer = diehl_cook()
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
        layer.dt = value
    assert layer.dt == 1.0 and layer.neurons["exc"].dt == 1.0


def test_bad_forward_input_raises():
    layer = diehl_cook()
    with pytest.raises(
        TypeError,
        match="connection 'in_exc' from 'input': spike must be a bool "
        "tensor, got dtype torch.float32",
    ):
        layer(input=torch.ones(2, 6))
    with pytest.raises(
        ValueError,
        match=r"connection 'in_exc' from 'input': spike must have "
        r"shape \(batch, 6\), got \(2, 5\)",
    ):
        layer(input=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"takes exactly the inputs \['input'\], got \['inp'\]"):
        layer(inp=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"takes exactly the inputs \['input'\], got \[\]"):
        layer()


def test_batch_size_change_without_reset_raises():
    layer = diehl_cook()
    layer(input=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch of 2 samples but got a batch of 3.*reset"):
        layer(input=torch.ones(3, 6, dtype=torch.bool))
    layer.reset()
    layer(input=torch.ones(3, 6, dtype=torch.bool))
